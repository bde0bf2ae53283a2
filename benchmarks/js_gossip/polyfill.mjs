// libp2p@3 and its dependencies call Promise.withResolvers (Node >= 22). Node 20 lacks it;
// load this first: node --import ./polyfill.mjs harness.mjs
if (typeof Promise.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers () {
      let resolve
      let reject
      const promise = new this((res, rej) => { resolve = res; reject = rej })
      return { promise, resolve, reject }
    }
  })
}
