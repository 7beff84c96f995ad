/** The software version, shown by `shoal --version` and announced in GSAs. */
export const VERSION = "0.1.0";
