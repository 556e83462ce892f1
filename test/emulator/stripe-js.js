// @ts-check
/* global window, document, fetch, URL, URLSearchParams, setTimeout, HTMLElement, HTMLInputElement, HTMLScriptElement */
// A stand-in for the part of Stripe.js (https://js.stripe.com/v3/) that the page uses, served by
// the emulator at /v3/, so that a local run and the browser test pay through the same calls a
// production page makes: Stripe(publishableKey), stripe.elements({clientSecret}),
// elements.create("payment"), element.mount(selectorOrElement), element.on("ready", handler),
// element.focus(), element.destroy(), stripe.confirmPayment({elements | clientSecret, redirect,
// confirmParams}) and stripe.handleNextAction({clientSecret}).
//
// As Stripe.js does, it talks to the API from the browser with the publishable key and the
// PaymentIntent's client_secret (POST /v1/payment_intents/{id}/confirm), here on the origin it
// was loaded from (the emulator). Unlike Stripe.js, the card form is plain DOM in the page, not an
// iframe, and has no styles of its own (the page's stylesheet applies), so it runs under a
// Content-Security-Policy that allows no inline styles. Only the card number is asked for; the
// test card numbers become Stripe's test payment methods.
//
// When a confirm answers `requires_action` (the bank asks for 3-D Secure), Stripe.js shows the
// bank's challenge in a modal; in test mode that is Stripe's test page with a button to complete
// and one to fail. The stand-in shows the same choice as a dialog in the page (classes
// `stripe-challenge` and `stripe-challenge__actions`, styled by the page) and sends the answer to
// the emulator (POST /v3/3ds/{id}, with the publishable key and the client_secret).

(() => {
  const script = document.currentScript;
  // Stripe.js talks to api.stripe.com; the stand-in to the emulator that served it.
  const apiBase = new URL(script instanceof HTMLScriptElement ? script.src : window.location.href).origin;

  /** Stripe's test card numbers, as the test payment methods the emulator knows. */
  const TEST_CARDS = new Map([
    ["4242424242424242", "pm_card_visa"],
    ["5555555555554444", "pm_card_mastercard"],
    ["378282246310005", "pm_card_amex"],
    ["4000000000000002", "pm_card_chargeDeclined"],
    ["4000000000009995", "pm_card_chargeDeclinedInsufficientFunds"],
    ["4000002760003184", "pm_card_authenticationRequired"],
    ["4000002500003155", "pm_card_authenticationRequiredOnSetup"],
  ]);
  const PREFILLED = "4242 4242 4242 4242";

  /** Thrown, as Stripe.js throws IntegrationError, for a call the page should never make. */
  class IntegrationError extends Error {
    /** @param {string} message */
    constructor(message) {
      super(message);
      this.name = "IntegrationError";
    }
  }

  /**
   * @typedef {{ type: string, code?: string, decline_code?: string, message: string, param?: string, payment_intent?: unknown }} StripeError
   * @typedef {{ error: StripeError } | { paymentIntent: Record<string, unknown> }} ConfirmResult
   */

  /** @param {string} digits */
  function luhn(digits) {
    let sum = 0;
    for (let i = 0; i < digits.length; i++) {
      let d = Number(digits[digits.length - 1 - i]);
      if (i % 2 === 1) {
        d *= 2;
        if (d > 9) d -= 9;
      }
      sum += d;
    }
    return sum % 10 === 0;
  }

  /**
   * The card's payment method, or the error Stripe.js reports before calling the API.
   * @param {string} entered
   * @returns {{ paymentMethod: string } | { error: StripeError }}
   */
  function paymentMethodFor(entered) {
    const digits = entered.replace(/[\s-]/g, "");
    if (!/^\d*$/.test(digits)) return { error: { type: "validation_error", code: "invalid_number", message: "Your card number is invalid." } };
    if (digits.length < 13) return { error: { type: "validation_error", code: "incomplete_number", message: "Your card number is incomplete." } };
    if (digits.length > 19 || !luhn(digits)) return { error: { type: "validation_error", code: "invalid_number", message: "Your card number is invalid." } };
    const paymentMethod = TEST_CARDS.get(digits);
    if (paymentMethod !== undefined) return { paymentMethod };
    return {
      error: {
        type: "card_error",
        code: "card_declined",
        message:
          "Your card was declined. Your request was in test mode, but used a non test card. For a list of valid test cards, visit: https://stripe.com/docs/testing.",
      },
    };
  }

  /**
   * @param {unknown} clientSecret
   * @param {string} caller
   */
  function secretOf(clientSecret, caller) {
    if (typeof clientSecret !== "string" || !/^pi_[A-Za-z0-9]+_secret_[A-Za-z0-9]+$/.test(clientSecret)) {
      throw new IntegrationError(`${caller}: clientSecret should be a client secret of the form \${id}_secret_\${secret}.`);
    }
    return clientSecret;
  }

  /** @param {string} clientSecret */
  function intentOf(clientSecret) {
    return clientSecret.slice(0, clientSecret.indexOf("_secret_"));
  }

  /**
   * An amount in minor units, as the page's visitor reads it ("$12.34").
   * @param {number} amount
   * @param {string} currency
   */
  function formatAmount(amount, currency) {
    try {
      const format = new Intl.NumberFormat(undefined, { style: "currency", currency: currency.toUpperCase() });
      return format.format(amount / 10 ** (format.resolvedOptions().maximumFractionDigits ?? 2));
    } catch {
      return `${amount} ${currency.toUpperCase()}`;
    }
  }

  let challenges = 0;

  /**
   * The bank's challenge as a modal dialog: a heading, the amount, "Complete authentication" and
   * "Fail authentication". Focus moves into it and stays there (Tab cycles, Escape fails, as
   * closing Stripe's modal does) and returns where it was once answered.
   * @param {number} amount
   * @param {string} currency
   * @returns {Promise<"complete" | "fail">}
   */
  function askCardholder(amount, currency) {
    challenges += 1;
    const id = `stripe-challenge-${challenges}`;
    const dialog = document.createElement("div");
    dialog.className = "stripe-challenge";
    dialog.setAttribute("role", "dialog");
    dialog.setAttribute("aria-modal", "true");
    dialog.setAttribute("aria-labelledby", `${id}-title`);
    dialog.setAttribute("aria-describedby", `${id}-amount`);
    const title = document.createElement("h2");
    title.id = `${id}-title`;
    title.textContent = "Authenticate this payment";
    const what = document.createElement("p");
    what.id = `${id}-amount`;
    what.textContent = `Your bank asks you to confirm a payment of ${formatAmount(amount, currency)}. This is a test page: choose the outcome.`;
    const actions = document.createElement("div");
    actions.className = "stripe-challenge__actions";
    const complete = document.createElement("button");
    complete.type = "button";
    complete.textContent = "Complete authentication";
    const fail = document.createElement("button");
    fail.type = "button";
    fail.textContent = "Fail authentication";
    actions.append(complete, fail);
    dialog.append(title, what, actions);
    const before = document.activeElement;
    document.body.append(dialog);
    complete.focus();

    return new Promise((resolve) => {
      let answered = false;
      /** @param {"complete" | "fail"} outcome */
      const answer = (outcome) => {
        // One answer per challenge, however many presses reach it.
        if (answered) return;
        answered = true;
        dialog.remove();
        if (before instanceof HTMLElement) before.focus();
        resolve(outcome);
      };
      complete.addEventListener("click", () => answer("complete"), { once: true });
      fail.addEventListener("click", () => answer("fail"), { once: true });
      dialog.addEventListener("keydown", (event) => {
        if (event.key === "Escape") {
          event.preventDefault();
          answer("fail");
        } else if (event.key === "Tab") {
          // A modal keeps the keyboard inside: Tab and Shift+Tab go round its two buttons.
          event.preventDefault();
          (document.activeElement === complete ? fail : complete).focus();
        }
      });
    });
  }

  let mounted = 0;

  /** The Payment Element: a labelled card number field. */
  class PaymentElement {
    /** @type {HTMLElement | null} */
    #root = null;
    /** @type {HTMLInputElement | null} */
    #input = null;
    /** @type {Array<() => void>} */
    #onReady = [];
    #destroyed = false;

    /** @param {string | HTMLElement} target */
    mount(target) {
      if (this.#destroyed) throw new IntegrationError("This Element has already been destroyed. Please create a new one.");
      const host = typeof target === "string" ? document.querySelector(target) : target;
      if (!(host instanceof HTMLElement)) {
        throw new IntegrationError(`The selector you specified (${typeof target === "string" ? target : "not an element"}) applies to no DOM elements.`);
      }
      if (this.#root) throw new IntegrationError("This Element is already mounted.");
      mounted += 1;
      const id = `stripe-standin-card-${mounted}`;
      const root = document.createElement("div");
      root.className = "stripe-standin";
      const label = document.createElement("label");
      label.htmlFor = id;
      label.textContent = "Card number";
      const input = document.createElement("input");
      input.id = id;
      input.name = "cardnumber";
      input.inputMode = "numeric";
      input.autocomplete = "cc-number";
      input.value = PREFILLED;
      input.setAttribute("aria-describedby", `${id}-hint`);
      const hint = document.createElement("p");
      hint.id = `${id}-hint`;
      hint.className = "hint";
      hint.textContent =
        "Test cards: 4242 4242 4242 4242 pays; 4000 0000 0000 0002 is declined; 4000 0000 0000 9995 has insufficient funds; 4000 0027 6000 3184 asks for 3-D Secure.";
      root.append(label, input, hint);
      host.replaceChildren(root);
      this.#root = root;
      this.#input = input;
      // Stripe.js says "ready" once its iframe has loaded: later than mount(), never during it.
      setTimeout(() => {
        if (this.#root) for (const handler of this.#onReady) handler();
      }, 0);
      return this;
    }

    /**
     * @param {string} event
     * @param {() => void} handler
     */
    on(event, handler) {
      if (event === "ready") this.#onReady.push(handler);
      return this;
    }

    focus() {
      this.#input?.focus();
    }

    destroy() {
      this.#root?.remove();
      this.#root = null;
      this.#input = null;
      this.#destroyed = true;
    }

    /** The number typed, or null when the element is not mounted. */
    cardNumber() {
      return this.#input ? this.#input.value : null;
    }
  }

  class Elements {
    /** @type {PaymentElement | null} */
    #payment = null;

    /**
     * @param {unknown} owner
     * @param {string} clientSecret
     */
    constructor(owner, clientSecret) {
      this.owner = owner;
      this.clientSecret = clientSecret;
    }

    /** @param {string} type */
    create(type) {
      if (type !== "payment") throw new IntegrationError(`The stand-in for Stripe.js has only the "payment" Element, not "${type}".`);
      if (this.#payment) throw new IntegrationError("Can only create one Element of type payment.");
      this.#payment = new PaymentElement();
      return this.#payment;
    }

    /** @returns {PaymentElement | null} */
    payment() {
      return this.#payment;
    }
  }

  /** @param {string} publishableKey */
  function Stripe(publishableKey) {
    if (typeof publishableKey !== "string" || !/^pk_(test|live)_[A-Za-z0-9_]+$/.test(publishableKey)) {
      throw new IntegrationError("Invalid value for Stripe(): apiKey should be a publishable key (pk_test_… or pk_live_…).");
    }
    const stripe = {
      /** @param {{ clientSecret?: string }} options */
      elements(options) {
        const clientSecret = options?.clientSecret;
        if (typeof clientSecret !== "string" || !/^pi_[A-Za-z0-9]+_secret_[A-Za-z0-9]+$/.test(clientSecret)) {
          throw new IntegrationError("Invalid value for elements(): clientSecret should be a client secret of the form ${id}_secret_${secret}.");
        }
        return new Elements(stripe, clientSecret);
      },

      /**
       * Confirms the PaymentIntent with the card in `elements`, or, with `clientSecret` instead, with
       * `confirmParams.payment_method` (a saved card), as Stripe.js does; a 3-D Secure challenge is
       * shown and answered before it settles.
       * @param {{ elements?: Elements, clientSecret?: string, redirect?: "always" | "if_required", confirmParams?: { return_url?: string, payment_method?: string } }} options
       * @returns {Promise<ConfirmResult>}
       */
      async confirmPayment(options) {
        const { elements, clientSecret: givenSecret, redirect = "always", confirmParams = {} } = options ?? {};
        if (redirect !== "if_required" && !confirmParams.return_url) {
          throw new IntegrationError("confirmPayment(): the `confirmParams.return_url` argument is required unless passing `redirect: 'if_required'`.");
        }
        /** @type {string} */
        let clientSecret;
        /** @type {string} */
        let paymentMethod;
        if (elements !== undefined) {
          if (!(elements instanceof Elements) || elements.owner !== stripe) {
            throw new IntegrationError("confirmPayment(): expected an `elements` instance created by this Stripe object.");
          }
          const entered = elements.payment()?.cardNumber();
          if (entered === null || entered === undefined) throw new IntegrationError("confirmPayment(): the Payment Element is not mounted.");
          const card = paymentMethodFor(entered);
          if ("error" in card) return { error: card.error };
          clientSecret = elements.clientSecret;
          paymentMethod = card.paymentMethod;
        } else {
          clientSecret = secretOf(givenSecret, "confirmPayment()");
          if (typeof confirmParams.payment_method !== "string" || !/^pm_[A-Za-z0-9_]+$/.test(confirmParams.payment_method)) {
            throw new IntegrationError("confirmPayment(): without `elements`, `confirmParams.payment_method` must be the id of a PaymentMethod (pm_…).");
          }
          paymentMethod = confirmParams.payment_method;
        }

        const id = intentOf(clientSecret);
        const form = new URLSearchParams({ client_secret: clientSecret, payment_method: paymentMethod });
        if (confirmParams.return_url) form.set("return_url", confirmParams.return_url);
        const confirmed = await call("POST", `/v1/payment_intents/${encodeURIComponent(id)}/confirm`, form);
        if ("error" in confirmed) return confirmed;
        const settled = confirmed.paymentIntent.status === "requires_action" ? await challenge(confirmed.paymentIntent, clientSecret) : confirmed;
        if ("error" in settled) return settled;
        if (redirect === "always" && confirmParams.return_url) {
          // As Stripe.js: to the return URL with the PaymentIntent named in its query; the promise never settles.
          const back = new URL(confirmParams.return_url);
          back.searchParams.set("payment_intent", id);
          back.searchParams.set("payment_intent_client_secret", clientSecret);
          back.searchParams.set("redirect_status", settled.paymentIntent.status === "succeeded" ? "succeeded" : "pending");
          window.location.assign(back.toString());
          return new Promise(() => {});
        }
        return settled;
      },

      /**
       * Carries out a PaymentIntent's next action (its 3-D Secure challenge), as Stripe.js does for
       * a PaymentIntent the server confirmed; one with nothing to do is answered as it is.
       * @param {{ clientSecret?: string }} options
       * @returns {Promise<ConfirmResult>}
       */
      async handleNextAction(options) {
        const clientSecret = secretOf(options?.clientSecret, "handleNextAction()");
        const query = new URLSearchParams({ client_secret: clientSecret });
        const found = await call("GET", `/v1/payment_intents/${encodeURIComponent(intentOf(clientSecret))}?${query.toString()}`, null);
        if ("error" in found || found.paymentIntent.status !== "requires_action") return found;
        return challenge(found.paymentIntent, clientSecret);
      },
    };

    /**
     * One call to the emulator with the publishable key, answered as Stripe.js answers.
     * @param {"GET" | "POST"} method
     * @param {string} path
     * @param {URLSearchParams | null} form
     * @returns {Promise<ConfirmResult>}
     */
    async function call(method, path, form) {
      /** @type {Record<string, string>} */
      const headers = { authorization: `Bearer ${publishableKey}` };
      if (form) headers["content-type"] = "application/x-www-form-urlencoded";
      let res;
      try {
        res = await fetch(`${apiBase}${path}`, form ? { method, headers, body: form } : { method, headers });
      } catch {
        return { error: { type: "api_connection_error", message: "We could not reach Stripe. Check your connection and try again." } };
      }
      /** @type {unknown} */
      const answer = await res.json().catch(() => ({}));
      const body = /** @type {{ error?: StripeError } & Record<string, unknown>} */ (answer);
      if (!res.ok || body.error) return { error: body.error ?? { type: "api_error", message: `Stripe answered ${res.status}.` } };
      return { paymentIntent: body };
    }

    /**
     * Shows the bank's 3-D Secure challenge for `paymentIntent` and sends the cardholder's answer.
     * A failed (or dismissed) challenge is the error Stripe.js reports.
     * @param {Record<string, unknown>} paymentIntent
     * @param {string} clientSecret
     * @returns {Promise<ConfirmResult>}
     */
    async function challenge(paymentIntent, clientSecret) {
      const outcome = await askCardholder(Number(paymentIntent.amount), String(paymentIntent.currency));
      const form = new URLSearchParams({ client_secret: clientSecret, outcome });
      const answered = await call("POST", `/v3/3ds/${encodeURIComponent(String(paymentIntent.id))}`, form);
      if ("error" in answered || answered.paymentIntent.status !== "requires_payment_method") return answered;
      const failure = /** @type {{ type?: string, code?: string } | null} */ (answered.paymentIntent.last_payment_error);
      return {
        error: {
          type: failure?.type ?? "invalid_request_error",
          code: failure?.code ?? "payment_intent_authentication_failure",
          message: "We are unable to authenticate your payment method. Please choose a different payment method and try again.",
          payment_intent: answered.paymentIntent,
        },
      };
    }

    return stripe;
  }

  /** @type {Window & { Stripe?: typeof Stripe }} */ (window).Stripe = Stripe;
})();
