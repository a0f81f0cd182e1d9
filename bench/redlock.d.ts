// redlock 5.0.0-beta.2 ships types its package.json "exports" does not point at; the part
// the benchmark uses, declared by hand.
declare module 'redlock' {
  import type { Redis } from 'ioredis';
  interface Lock {
    release(): Promise<unknown>;
  }
  export default class Redlock {
    constructor(clients: Redis[], settings?: { readonly retryCount?: number });
    acquire(resources: string[], duration: number): Promise<Lock>;
  }
}
