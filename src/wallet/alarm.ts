// The account object's one alarm, set to the earliest work any part of it owes: the wallet's
// sync, a hold's expiry, keys to forget, events not yet sent, auto-recharge's next step. Each
// part adds a source that answers when it is next due.
//
// The alarm is set without reading it first, so the call leaves in the same synchronous run as
// the write before it and the platform stores the two together: no crash can fall between a
// write (an owed sync, an event to send, a recharge recorded) and the alarm that finishes it.

export class AccountAlarm {
  /** The time last set by this instance (memory: after a restart, the next write sets it again). */
  #at: number | null = null;
  readonly #sources: Array<() => number | null> = [];

  constructor(private readonly storage: DurableObjectStorage) {}

  /** Adds work the alarm must cover: `dueAt` answers when it is next due (null: nothing). */
  add(dueAt: () => number | null): void {
    this.#sources.push(dueAt);
  }

  /** The alarm has fired: what it was set to is gone. */
  fired(): void {
    this.#at = null;
  }

  /**
   * Sets the alarm to the earliest work. It only moves the alarm earlier (a later one runs, finds
   * nothing due and re-arms), unless `exact`, which settles it on the earliest work, or clears it.
   */
  async arm(options: { exact?: boolean } = {}): Promise<void> {
    const times = this.#sources.map((dueAt) => dueAt()).filter((t): t is number => t !== null);
    const next = times.length === 0 ? null : Math.min(...times);
    if (next === null) {
      if (options.exact && this.#at !== null) {
        this.#at = null;
        await this.storage.deleteAlarm();
      }
      return;
    }
    if (!options.exact && this.#at !== null && this.#at <= next) return;
    this.#at = next;
    await this.storage.setAlarm(next);
  }
}
