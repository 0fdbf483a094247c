module rill.dev/bindings/go

go 1.19
