// @ts-check
/* global window, document, fetch, URL, URLSearchParams, setTimeout, HTMLElement, HTMLInputElement, HTMLScriptElement */
// A stand-in for the part of Stripe.js (https://js.stripe.com/v3/) that the page uses, served by
// the emulator at /v3/, so that a local run and the browser test pay through the same calls a
// production page makes: Stripe(publishableKey), stripe.elements({clientSecret}),
// elements.create("payment"), element.mount(selectorOrElement), element.on("ready", handler),
// element.focus(), element.destroy(), and stripe.confirmPayment({elements, redirect, confirmParams}).
//
// As Stripe.js does, it talks to the API from the browser with the publishable key and the
// PaymentIntent's client_secret (POST /v1/payment_intents/{id}/confirm), here on the origin it
// was loaded from (the emulator). Unlike Stripe.js, the card form is plain DOM in the page, not an
// iframe, and has no styles of its own (the page's stylesheet applies), so it runs under a
// Content-Security-Policy that allows no inline styles. Only the card number is asked for; the
// test card numbers become Stripe's test payment methods.

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
      hint.textContent = "Test cards: 4242 4242 4242 4242 pays; 4000 0000 0000 0002 is declined.";
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
       * @param {{ elements?: Elements, redirect?: "always" | "if_required", confirmParams?: { return_url?: string } }} options
       * @returns {Promise<ConfirmResult>}
       */
      async confirmPayment(options) {
        const { elements, redirect = "always", confirmParams = {} } = options ?? {};
        if (!(elements instanceof Elements) || elements.owner !== stripe) {
          throw new IntegrationError("confirmPayment(): expected an `elements` instance created by this Stripe object.");
        }
        if (redirect !== "if_required" && !confirmParams.return_url) {
          throw new IntegrationError("confirmPayment(): the `confirmParams.return_url` argument is required unless passing `redirect: 'if_required'`.");
        }
        const entered = elements.payment()?.cardNumber();
        if (entered === null || entered === undefined) throw new IntegrationError("confirmPayment(): the Payment Element is not mounted.");
        const card = paymentMethodFor(entered);
        if ("error" in card) return { error: card.error };

        const clientSecret = elements.clientSecret;
        const id = clientSecret.slice(0, clientSecret.indexOf("_secret_"));
        const form = new URLSearchParams({ client_secret: clientSecret, payment_method: card.paymentMethod });
        if (confirmParams.return_url) form.set("return_url", confirmParams.return_url);
        let res;
        try {
          res = await fetch(`${apiBase}/v1/payment_intents/${encodeURIComponent(id)}/confirm`, {
            method: "POST",
            headers: { authorization: `Bearer ${publishableKey}`, "content-type": "application/x-www-form-urlencoded" },
            body: form,
          });
        } catch {
          return { error: { type: "api_connection_error", message: "We could not reach Stripe. Check your connection and try again." } };
        }
        /** @type {unknown} */
        const answer = await res.json().catch(() => ({}));
        const body = /** @type {{ error?: StripeError } & Record<string, unknown>} */ (answer);
        if (!res.ok || body.error) return { error: body.error ?? { type: "api_error", message: `Stripe answered ${res.status}.` } };
        if (redirect === "always" && confirmParams.return_url) {
          // As Stripe.js: to the return URL with the PaymentIntent named in its query; the promise never settles.
          const back = new URL(confirmParams.return_url);
          back.searchParams.set("payment_intent", id);
          back.searchParams.set("payment_intent_client_secret", clientSecret);
          back.searchParams.set("redirect_status", body.status === "succeeded" ? "succeeded" : "pending");
          window.location.assign(back.toString());
          return new Promise(() => {});
        }
        return { paymentIntent: body };
      },
    };
    return stripe;
  }

  /** @type {Window & { Stripe?: typeof Stripe }} */ (window).Stripe = Stripe;
})();
