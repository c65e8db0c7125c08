module proxy-wasm-book/bench/dynamic-module

go 1.25.6

require github.com/envoyproxy/envoy/source/extensions/dynamic_modules v0.0.0-20260423231439-f1dd21b16c24
