//go:build wasip1 && initcall

package main

// With the initcall tag, package initialisation (inside _initialize) calls a
// host function outside Envoy's initialisation allow-list: loading must fail.
func init() {
	getProperty("plugin_name")
}
