/**
 * Group membership (tooz's groups): join with capabilities, leave, list the live members.
 * A member is a record its coordinator's heartbeat keeps alive, so a member whose process
 * dies leaves the list within `lockTtlMs`.
 *
 * Internal to statesmith (not exported from the package).
 */
import type { CoordinatorReply } from '../../../machines/coordinator.machine.ts';
import type { GroupMember, RecordStore } from '../types.ts';
import type { OwnedRecords } from './records.ts';

/** What groups need of the coordinator's engine. */
export interface GroupHost {
  readonly memberId: string;
  readonly prefix: string;
  readonly records: OwnedRecords;
  recordStore(): RecordStore;
  /** The record store if there is a backend (connected or not): a leave deletes what it can. */
  currentRecords(): RecordStore | undefined;
}

export class Groups {
  readonly #host: GroupHost;
  /** The groups this member is in: group → its record's value. */
  readonly #joined = new Map<string, string>();

  constructor(host: GroupHost) {
    this.#host = host;
  }

  #dir(group: string): string {
    return `group/${this.#host.prefix}${group}/`;
  }

  /** Forgets every membership (the coordinator stopped; its records are deleted with the rest). */
  clear(): void {
    this.#joined.clear();
  }

  async join(group: string, capabilities: unknown): Promise<CoordinatorReply> {
    const host = this.#host;
    if (this.#joined.has(group)) {
      return {
        type: 'statesmith.rejected',
        command: { type: 'statesmith.coordinator.join', group },
        state: 'connected',
        code: 'ERR_ALREADY_MEMBER',
        reason: `${host.memberId} is already a member of group ${JSON.stringify(group)}`,
      };
    }
    const value = JSON.stringify({ capabilities: capabilities ?? null });
    this.#joined.set(group, value);
    try {
      await host.records.own(host.recordStore(), this.#dir(group), host.memberId, value, () => this.#joined.get(group) === value);
    } catch (error) {
      this.#joined.delete(group);
      throw error;
    }
    return { type: 'statesmith.coordinator.joined', group, memberId: host.memberId };
  }

  async leave(group: string): Promise<CoordinatorReply> {
    const host = this.#host;
    const wasMember = this.#joined.delete(group);
    if (wasMember) await host.records.disown(host.currentRecords(), this.#dir(group), host.memberId);
    return { type: 'statesmith.coordinator.left', group, memberId: host.memberId, wasMember };
  }

  /** The live members of `group`, by member id. */
  async list(group: string): Promise<GroupMember[]> {
    const records = await this.#host.recordStore().list(this.#dir(group));
    const members: GroupMember[] = [];
    for (const { id, value } of records) {
      let capabilities: unknown = null;
      try {
        capabilities = (JSON.parse(value) as { capabilities?: unknown }).capabilities ?? null;
      } catch {
        // A record not written by statesmith: the member is there, its capabilities unknown.
      }
      members.push({ memberId: id, capabilities });
    }
    return members.sort((a, b) => (a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0));
  }
}
