// The model test's own emulator, started as the worker project's is (test/global-setup.ts).

export { default } from "../global-setup.js";
