/**
 * Where the ingest endpoints live. Their own module, with nothing else in it, because src/index.ts
 * routes on them at every request and loads the endpoints only for an event request
 * (docs/architecture.md "Start-up").
 */
export const BROWSER_EVENTS_PATH = "/_ss/events";
export const SDK_EVENTS_PATH = "/_ss/v1/events";
