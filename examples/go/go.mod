module rill.dev/examples/go

go 1.19

require rill.dev/bindings/go v0.0.0

replace rill.dev/bindings/go => ../../bindings/go
