/**
 * Runs `task` one at a time and coalesces the calls that come while it runs: they share one more
 * run, started after the current one ends. Each caller's promise settles after a run that began
 * after its call, so "apply what changed" never misses a change and never runs twice in parallel.
 */
export function coalesced(task: () => Promise<void>): () => Promise<void> {
  let tail: Promise<void> = Promise.resolve();
  let queued: Promise<void> | undefined;
  return () => {
    if (queued) return queued;
    const run = tail.then(() => {
      queued = undefined;
      return task();
    });
    queued = run;
    tail = run.catch(() => undefined);
    return run;
  };
}
