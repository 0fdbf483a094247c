//! A small builder for ONNX graphs: nodes with generated output names, constants,
//! external-data initializers, typed graph inputs and outputs.

use super::proto::{
    attribute_type, data_type, AttributeProto, Dimension, DimensionValue, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto,
    TypeProto, TypeProtoTensor, ValueInfoProto, DATA_LOCATION_EXTERNAL,
};
use crate::weights::{StoredDtype, TensorLocation, WeightDtype};

/// One dimension of a graph input or output: fixed, or named and symbolic.
#[derive(Debug, Clone)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A symbolic size (e.g. `batch_size`).
    Named(&'static str),
}

/// An attribute of a node.
pub fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INT,
        i: value,
        ..Default::default()
    }
}

/// A float attribute.
pub fn attr_float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::FLOAT,
        f: value,
        ..Default::default()
    }
}

/// An integer-list attribute.
pub fn attr_ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INTS,
        ints: values.to_vec(),
        ..Default::default()
    }
}

/// The ONNX element type of weights of `dtype`.
pub fn elem_type(dtype: WeightDtype) -> i32 {
    match dtype {
        WeightDtype::F32 => data_type::FLOAT,
        WeightDtype::F16 => data_type::FLOAT16,
    }
}

/// Accumulates a graph.
#[derive(Default)]
pub struct GraphBuilder {
    graph: GraphProto,
    counter: usize,
    /// Operator domains used besides the default one, with their versions.
    domains: Vec<(String, i64)>,
    /// Model metadata (`metadata_props`).
    metadata: Vec<(String, String)>,
}

impl GraphBuilder {
    /// A node with one output whose name is generated from `op_type`.
    pub fn op(&mut self, op_type: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let name = self.fresh(op_type);
        self.op_into(op_type, inputs, attrs, &[&name]);
        name
    }

    /// A node whose outputs have the given names.
    pub fn op_into(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
        outputs: &[&str],
    ) {
        let name = format!("{op_type}_{}", self.counter);
        self.counter += 1;
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            name,
            op_type: op_type.into(),
            attribute: attrs,
            ..Default::default()
        });
    }

    /// A node of operator domain `domain` (e.g. `com.microsoft`, version 1) whose
    /// outputs have the given names.
    pub fn op_domain_into(
        &mut self,
        domain: &str,
        op_type: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
        outputs: &[&str],
    ) {
        if !self.domains.iter().any(|(d, _)| d == domain) {
            self.domains.push((domain.to_string(), 1));
        }
        self.op_into(op_type, inputs, attrs, outputs);
        if let Some(node) = self.graph.node.last_mut() {
            node.domain = domain.into();
        }
    }

    /// Records a model metadata entry (read by runtimes through the session's metadata).
    pub fn metadata(&mut self, key: &str, value: &str) {
        self.metadata.push((key.into(), value.into()));
    }

    /// A node with `n` generated outputs.
    pub fn op_n(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
        n: usize,
    ) -> Vec<String> {
        let outs: Vec<String> = (0..n).map(|_| self.fresh(op_type)).collect();
        let refs: Vec<&str> = outs.iter().map(String::as_str).collect();
        self.op_into(op_type, inputs, attrs, &refs);
        outs
    }

    /// A subgraph (a branch of an `If`) made by `build`, which returns the subgraph's
    /// outputs (name, element type, dims). Its generated names continue this graph's, so
    /// no name is defined twice; it may read this graph's values.
    pub fn subgraph(
        &mut self,
        name: &str,
        build: impl FnOnce(&mut GraphBuilder) -> Vec<(String, i32, Vec<Dim>)>,
    ) -> GraphProto {
        let mut sub = GraphBuilder {
            counter: self.counter,
            ..Default::default()
        };
        for (output, elem, dims) in build(&mut sub) {
            sub.output(&output, elem, &dims);
        }
        self.counter = sub.counter;
        let mut graph = sub.graph;
        graph.name = name.into();
        graph
    }

    /// An `If` node: `then_branch` runs where the one-element boolean `cond` is true,
    /// `else_branch` otherwise; both must have `n` outputs of the same types.
    pub fn op_if(
        &mut self,
        cond: &str,
        then_branch: GraphProto,
        else_branch: GraphProto,
        n: usize,
    ) -> Vec<String> {
        let graph = |name: &str, g: GraphProto| AttributeProto {
            name: name.into(),
            r#type: attribute_type::GRAPH,
            g: Some(Box::new(g)),
            ..Default::default()
        };
        let attrs = vec![
            graph("then_branch", then_branch),
            graph("else_branch", else_branch),
        ];
        self.op_n("If", &[cond], attrs, n)
    }

    /// A new unique value name derived from `stem`.
    pub fn fresh(&mut self, stem: &str) -> String {
        self.counter += 1;
        format!("/{}_{}", stem.to_lowercase(), self.counter)
    }

    fn constant(&mut self, tensor: TensorProto) -> String {
        let attr = AttributeProto {
            name: "value".into(),
            r#type: attribute_type::TENSOR,
            t: Some(tensor),
            ..Default::default()
        };
        self.op("Constant", &[], vec![attr])
    }

    /// A constant int64 tensor of shape `[values.len()]`.
    pub fn const_i64(&mut self, values: &[i64]) -> String {
        self.constant(TensorProto {
            dims: vec![values.len() as i64],
            data_type: data_type::INT64,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        })
    }

    /// A constant float tensor of shape `dims` in `dtype`.
    pub fn const_float(&mut self, values: &[f32], dims: &[i64], dtype: WeightDtype) -> String {
        let raw_data = match dtype {
            WeightDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            WeightDtype::F16 => values
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
        };
        self.constant(TensorProto {
            dims: dims.to_vec(),
            data_type: elem_type(dtype),
            raw_data,
            ..Default::default()
        })
    }

    /// An initializer whose bytes are ONNX external data at `loc` (relative to the model
    /// folder), named `name`.
    pub fn external_initializer(&mut self, name: &str, loc: &TensorLocation) {
        let entry = |k: &str, v: String| StringStringEntryProto {
            key: k.into(),
            value: v,
        };
        self.graph.initializer.push(TensorProto {
            dims: loc.shape.iter().map(|&d| d as i64).collect(),
            data_type: match loc.dtype {
                StoredDtype::Float(d) => elem_type(d),
                StoredDtype::Bf16 => data_type::BFLOAT16,
                StoredDtype::U8 => data_type::UINT8,
            },
            name: name.into(),
            external_data: vec![
                entry("location", loc.file.clone()),
                entry("offset", loc.offset.to_string()),
                entry("length", loc.length.to_string()),
            ],
            data_location: DATA_LOCATION_EXTERNAL,
            ..Default::default()
        });
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, elem: i32, dims: &[Dim]) {
        self.graph.input.push(value_info(name, elem, dims));
    }

    /// Declares an optional int64 scalar graph input: an initializer of the same name holds
    /// `default`, which a caller that does not feed the input gets.
    pub fn optional_scalar_input(&mut self, name: &str, default: i64) {
        self.graph
            .input
            .push(value_info(name, data_type::INT64, &[]));
        self.graph.initializer.push(TensorProto {
            dims: vec![],
            data_type: data_type::INT64,
            name: name.into(),
            raw_data: default.to_le_bytes().to_vec(),
            ..Default::default()
        });
    }

    /// Declares a graph output.
    pub fn output(&mut self, name: &str, elem: i32, dims: &[Dim]) {
        self.graph.output.push(value_info(name, elem, dims));
    }

    /// The finished model with the default-domain `opset`.
    pub fn finish(self, name: &str, opset: i64, doc: &str) -> ModelProto {
        let mut graph = self.graph;
        graph.name = name.into();
        ModelProto {
            ir_version: 8,
            opset_import: std::iter::once((String::new(), opset))
                .chain(self.domains)
                .map(|(domain, version)| OperatorSetIdProto { domain, version })
                .collect(),
            metadata_props: self
                .metadata
                .into_iter()
                .map(|(key, value)| StringStringEntryProto { key, value })
                .collect(),
            producer_name: "rill-train".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.into(),
            graph: Some(graph),
            ..Default::default()
        }
    }
}

fn value_info(name: &str, elem: i32, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => DimensionValue::DimValue(*n as i64),
                Dim::Named(s) => DimensionValue::DimParam(s.to_string()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: elem,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}
