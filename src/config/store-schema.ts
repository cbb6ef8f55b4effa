import Type from 'typebox'
import { DURATION_PATTERN } from '../duration.ts'
import { Defaulted } from '../schema-kit/builders.ts'

/** The `store` block: where keyvalet keeps sessions, the vault and the audit log. */
export const STORE_SCHEMA = Type.Object({
  url: Type.String({
    minLength: 1,
    description:
      'postgres://USER@HOST:PORT/DATABASE (HOST may be [IPv6]; for a Unix socket, postgres://USER@localhost/DATABASE?host=/run/postgresql). No password in the URL: give it with password_file or password_env. keyvalet applies its migrations at start when this role may (see docs/deploy.md for a least-privilege runtime role).',
  }),
  password_file: Type.Optional(Type.String({
    minLength: 1,
    description: "A file whose first line is the role's password (e.g. a mounted Kubernetes secret), relative to the config file's folder. Read at each start.",
  })),
  password_env: Type.Optional(Type.String({
    pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
    description: "The name of an environment variable holding the role's password. Read at each start.",
  })),
  resync_ms: Defaulted(Type.Integer({
    minimum: 10,
    maximum: 10_000,
    default: 250,
    description:
      'How often each instance proves that it still hears every change (a heartbeat through its LISTEN connection). Sessions, secrets and admin tokens it keeps answer for at most three times this long without that proof, so a change reaches every instance within that bound even when its notification connection died unseen; a notification usually takes milliseconds. Default 250.',
  })),
  unavailable_grace: Defaulted(Type.String({
    pattern: DURATION_PATTERN,
    errorMessage: 'must be a whole number and a unit: s, m, h or d (e.g. 30s)',
    default: '30s',
    description:
      "While the server cannot be reached, a request whose session and secrets this instance keeps is still served for this long after they were last known current (0s: never); other requests, and all of them after that, are refused with 503 store_unavailable. Default 30s.",
  })),
  tls: Defaulted(Type.Object({
    mode: Defaulted(Type.Enum(['verify-full', 'disable'], {
      default: 'verify-full',
      description:
        "verify-full: TLS, the server's certificate checked against ca_file (or the system's public roots) and its name against the host, as libpq's sslmode=verify-full. disable: cleartext, allowed only to a loopback address or a Unix socket. Default verify-full.",
    })),
    ca_file: Type.Optional(Type.String({
      minLength: 1,
      description: "A PEM file of the CA certificates that may sign the server's certificate (in place of the public roots), relative to the config file's folder. Read at load.",
    })),
  }, { additionalProperties: false, default: {}, description: 'TLS to the PostgreSQL server.' })),
}, {
  additionalProperties: false,
  description: 'A PostgreSQL server as the store (several keyvalet instances may share it). Not set: SQLite files in data_dir.',
})
