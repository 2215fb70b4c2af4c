#!/usr/bin/env node
// Runs when the native addon could not be built at install: meshd still works on the pure
// TypeScript paths (node:crypto and node:dgram), only slower, and says so.
console.warn('meshd: the native addon (native/) did not build; falling back to the pure TypeScript data path.');
console.warn('meshd: to build it, install python3, make and g++, then run `npm run build:native`.');
