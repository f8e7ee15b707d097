module angzarr.test/wasmhostplugin

go 1.26
