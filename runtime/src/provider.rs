//! Execution providers: where ONNX Runtime runs a model's graph. The CPU always; CUDA
//! when rill is built with the `cuda` cargo feature, the loaded ONNX Runtime library has
//! its CUDA provider (the `onnxruntime-gpu` wheel: `make cuda-env`) and a GPU is usable.

use crate::error::{Result, RillError};

/// Which execution provider runs a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provider {
    /// ONNX Runtime's CPU provider (the default).
    #[default]
    Cpu,
    /// CUDA on GPU `device`; opening the model fails, saying what is missing, when CUDA
    /// cannot be used.
    Cuda {
        /// CUDA device ordinal.
        device: i32,
    },
    /// CUDA on GPU `device` when it can be used, else the CPU; the model records why it
    /// fell back ([`crate::Model::provider_note`]).
    CudaOrCpu {
        /// CUDA device ordinal.
        device: i32,
    },
}

impl Provider {
    /// `cpu`, `cuda` or `auto` (CUDA, else the CPU) on GPU `device`.
    pub fn parse(name: &str, device: i32) -> Result<Provider> {
        match name {
            "cpu" => Ok(Provider::Cpu),
            "cuda" => Ok(Provider::Cuda { device }),
            "auto" => Ok(Provider::CudaOrCpu { device }),
            other => Err(RillError::InvalidArgument(format!(
                "execution provider `{other}`: use cpu, cuda or auto (CUDA, else the CPU)"
            ))),
        }
    }

    /// A short name: `cpu`, `cuda:0`.
    pub fn describe(self) -> String {
        match self {
            Provider::Cpu => "cpu".into(),
            Provider::Cuda { device } | Provider::CudaOrCpu { device } => format!("cuda:{device}"),
        }
    }

    /// Whether CUDA is asked for (required or preferred).
    pub fn wants_cuda(self) -> bool {
        !matches!(self, Provider::Cpu)
    }
}

/// Whether this build of rill can drive the CUDA provider (the `cuda` cargo feature).
pub const CUDA_BUILD: bool = cfg!(feature = "cuda");

/// Why ONNX Runtime's CUDA provider cannot run `graph` on the GPU, if it cannot: its
/// `GroupQueryAttention` kernel (the fused-attention export, `rill-train export
/// --attention gqa`) exists only for f16 and bf16, so an f32 fused-attention graph would
/// run its attention on the CPU and copy the whole KV cache between GPU and host at every
/// layer of every step.
pub(crate) fn cuda_cannot_run(graph: &crate::graph::GraphInfo) -> Option<String> {
    use crate::kv_cache::{CacheDtype, Layout};
    (graph.cache_layout == Layout::Shared && graph.cache_dtype == CacheDtype::F32).then(|| {
        "this is an f32 fused-attention graph (GroupQueryAttention), and ONNX Runtime's CUDA provider runs GroupQueryAttention only in f16 or bf16: every step would copy the KV cache between the GPU and the host. On the GPU use an f16 export (`rill-train export --attention gqa --dtype f16`) or the plain one (`--attention hf`; in a folder that has both, `--graph plain` runs model.onnx)".to_string()
    })
}

/// Registers CUDA on GPU `device` with `builder`, or says what is missing.
pub(crate) fn register_cuda(
    builder: ort::session::builder::SessionBuilder,
    device: i32,
) -> std::result::Result<ort::session::builder::SessionBuilder, String> {
    #[cfg(feature = "cuda")]
    {
        use ort::ep::ExecutionProvider;
        let library = crate::ort_env::loaded_from()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the loaded ONNX Runtime library".into());
        if !ort::ep::CUDA::is_available().unwrap_or(false) {
            return Err(format!(
                "{library} has no CUDA execution provider: it is a CPU build of ONNX Runtime. Install the onnxruntime-gpu wheel of the pinned version (`make cuda-env`) and point ORT_DYLIB_PATH (or rill_set_onnxruntime_path) at its libonnxruntime.so"
            ));
        }
        // TF32 off: f32 graphs then give the CPU's logits to ~1e-5 instead of ~1e-3.
        let ep = ort::ep::CUDA::default()
            .with_device_id(device)
            .with_tf32(false)
            .build()
            .error_on_failure();
        builder.with_execution_providers([ep]).map_err(|e| {
            format!("CUDA on GPU {device} cannot be used ({e}): check that the GPU exists, its driver is loaded and the CUDA and cuDNN libraries the onnxruntime-gpu wheel needs are installed (`make cuda-env`)")
        })
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (builder, device);
        Err("this build of rill has no CUDA support: rebuild with `cargo build --release --features cuda` (the `cuda` cargo feature)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_describe() {
        assert_eq!(Provider::parse("cpu", 0).unwrap(), Provider::Cpu);
        assert_eq!(
            Provider::parse("cuda", 1).unwrap(),
            Provider::Cuda { device: 1 }
        );
        assert_eq!(
            Provider::parse("auto", 0).unwrap().describe(),
            "cuda:0".to_string()
        );
        let e = Provider::parse("rocm", 0).unwrap_err().to_string();
        assert!(e.contains("use cpu, cuda or auto"), "{e}");
    }

    #[test]
    fn cuda_refuses_only_f32_fused_attention() {
        use crate::graph::GraphInfo;
        use crate::kv_cache::{CacheDtype, Layout};
        let graph = |cache_dtype, cache_layout| GraphInfo {
            layers: 4,
            kv_heads: 2,
            head_dim: 64,
            cache_dtype,
            logits_f16: false,
            has_position_ids: true,
            vocab: 4096,
            cache_layout,
            logits_to_keep: true,
            max_positions: None,
        };
        let why = cuda_cannot_run(&graph(CacheDtype::F32, Layout::Shared)).unwrap();
        assert!(why.contains("--attention gqa --dtype f16"), "{why}");
        for (dtype, layout) in [
            (CacheDtype::F16, Layout::Shared),
            (CacheDtype::F32, Layout::DoubleBuffered),
            (CacheDtype::F16, Layout::DoubleBuffered),
        ] {
            assert_eq!(cuda_cannot_run(&graph(dtype, layout)), None);
        }
    }
}
