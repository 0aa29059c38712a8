// Package docs holds tests that keep the documentation true to the code (the README's
// configuration tables against the variables the services read).
package docs
