/**
 * Whether a unit of work's function can see the arguments it is called with, so whether it
 * needs its `AbortSignal` made. On Node 20 each AbortSignal costs ~3 µs and a hidden class
 * of its own (bench/PROFILE.md, "AbortSignals on Node 20"), a fifth of a trivial task.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */

/** The answer per function, computed once. */
const takesArguments = new WeakMap<Function, boolean>();

/**
 * False only for an arrow function whose parameter list is empty, `() =>` or
 * `async () =>`: it cannot read an argument (an arrow function has no `arguments` of its
 * own). Anything else, bound and native functions and `(...args) =>` included, takes them.
 */
export function takesSignal(fn: Function): boolean {
  let takes = takesArguments.get(fn);
  if (takes === undefined) {
    takes = !/^(?:async\s*)?\(\s*\)\s*=>/.test(Function.prototype.toString.call(fn));
    takesArguments.set(fn, takes);
  }
  return takes;
}
