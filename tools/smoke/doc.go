// Package smoke holds the integration smoke tests of the local stack: each one proves that a
// real server started by deploy/local/stack.sh answers the project's client library the way the
// services rely on. Run them with `make integration` (build tag `integration`).
package smoke
