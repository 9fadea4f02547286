/**
 * Keeping ids across a write that replaces a list (an experiment's variations, a flag's
 * variables, variations and delivery rules): an entry keeps its id when the request names it,
 * else when its key matches a current entry's, so renaming a key while sending the id keeps the
 * buckets and sticky decisions that hang on the id (docs/api.md "Experiments", docs/flags.md).
 */
import { newId } from "../ids";

/** Picks ids: the one asked for if it is current and unused, else the one of the same key, else new. */
export class IdKeeper {
  private readonly used = new Set<string>();
  private readonly byId: Set<string>;
  private readonly byKey: Map<string, string>;

  constructor(current: ReadonlyArray<{ id: string; key: string }>) {
    this.byId = new Set(current.map((c) => c.id));
    this.byKey = new Map(current.map((c) => [c.key, c.id]));
  }

  /** The id of the entry with `key`, asked to keep `id` (undefined: none asked). */
  pick(id: string | undefined, key: string): string {
    let chosen: string | undefined;
    if (id !== undefined && this.byId.has(id) && !this.used.has(id)) chosen = id;
    else {
      const same = this.byKey.get(key);
      if (same !== undefined && !this.used.has(same)) chosen = same;
    }
    chosen ??= newId();
    this.used.add(chosen);
    return chosen;
  }
}
