/**
 * A D1 binding that throws when a statement containing `fragment` is prepared and works for
 * every other statement: one job of the scheduled handler fails while the others run (tests of
 * src/index.ts's isolation of its jobs).
 */
export function d1FailingOn(db: D1Database, fragment: string, message: string): D1Database {
  return new Proxy(db, {
    get(target, property) {
      if (property === "prepare")
        return (sql: string) => {
          if (sql.includes(fragment)) throw new Error(message);
          return target.prepare(sql);
        };
      const value = Reflect.get(target, property) as unknown;
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
