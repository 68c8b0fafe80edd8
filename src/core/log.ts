import pino, { type Logger } from 'pino';

/** Structured logs on stderr, quiet unless asked (WGP2P_LOG=info|debug). Secrets are redacted by key name. */
export function createLogger(name: string, level = process.env.WGP2P_LOG ?? 'warn'): Logger {
  return pino({ name, level, redact: ['privateKey', 'token', '*.privateKey', '*.token'] }, pino.destination(2));
}

export type { Logger };
