package rill

// #include <stdlib.h>
// #include "rill.h"
import "C"

import (
	"runtime"
	"sync"
	"unsafe"
)

// Options for Open; the zero value (or nil) gives rill's defaults.
type Options struct {
	// ONNX Runtime intra-op threads; 0 lets ONNX Runtime choose.
	IntraThreads int
	// ONNX Runtime loads the weights itself instead of rill mapping them without a copy.
	ORTLoadsWeights bool
	// Stop ONNX Runtime from pre-packing weight matrices (less memory, slower).
	NoPrepack bool
	// Where the graph runs: ProviderCPU (the default), ProviderCUDA (ErrProvider, saying
	// what is missing, when CUDA cannot be used) or ProviderCUDAElseCPU.
	Provider Provider
	// The CUDA device ordinal.
	Device int
	// Which of the folder's graphs runs: GraphAuto (the default: the fused-attention
	// model.gqa.onnx when the folder has one, else model.onnx), GraphPlain or GraphFused.
	Graph Graph
}

// Graph chooses which of a folder's graphs runs (rill_model_options.graph).
type Graph uint32

// The graph choices.
const (
	GraphAuto  Graph = 0
	GraphPlain Graph = 1
	GraphFused Graph = 2
)

// Provider is where a model's graph runs (rill_model_options.provider).
type Provider uint32

// The execution providers.
const (
	ProviderCPU         Provider = 0
	ProviderCUDA        Provider = 1
	ProviderCUDAElseCPU Provider = 2
)

// SetOnnxRuntimePath makes path the first place ONNX Runtime is loaded from, for
// applications that ship the library in their own bundle; call it before the first
// Open. ErrInvalidArgument once the library is loaded.
func SetOnnxRuntimePath(path string) error {
	if err := checkNoNUL(path, "path"); err != nil {
		return err
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	return call(func() C.enum_rill_status { return C.rill_set_onnxruntime_path(cpath) })
}

// Model is an opened model folder, shared read-only by its sessions; safe for
// concurrent use. Sessions keep the underlying model alive after Close.
type Model struct {
	mu  sync.RWMutex // Close (write) against calls in flight (read)
	ptr *C.rill_model
}

// Open opens the model folder at dir (config, tokenizer, weights and graph, all
// checked). Errors: ErrNotFound, ErrConfig, ErrWeights, ErrGraphMismatch, ErrTokenizer,
// ErrORTNotFound, ErrORT, ErrInvalidArgument.
func Open(dir string, opts *Options) (*Model, error) {
	if err := checkNoNUL(dir, "dir"); err != nil {
		return nil, err
	}
	copts := C.rill_model_options_default()
	if opts != nil {
		copts.intra_threads = C.uint32_t(opts.IntraThreads)
		if opts.ORTLoadsWeights {
			copts.ort_loads_weights = 1
		}
		if opts.NoPrepack {
			copts.prepack = 0
		}
		copts.provider = C.uint32_t(opts.Provider)
		copts.device_id = C.int32_t(opts.Device)
		copts.graph = C.uint32_t(opts.Graph)
	}
	cdir := C.CString(dir)
	defer C.free(unsafe.Pointer(cdir))
	var ptr *C.rill_model
	if err := call(func() C.enum_rill_status { return C.rill_model_open(cdir, &copts, &ptr) }); err != nil {
		return nil, err
	}
	liveObjects.Add(1)
	m := &Model{ptr: ptr}
	runtime.SetFinalizer(m, (*Model).Close)
	return m, nil
}

// Close releases the model. Idempotent; sessions created from it stay usable.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ptr != nil {
		C.rill_model_free(m.ptr)
		m.ptr = nil
		liveObjects.Add(-1)
		runtime.SetFinalizer(m, nil)
	}
	return nil
}

// Tokenize gives the token ids of text, special tokens included (BOS for Llama models).
func (m *Model) Tokenize(text string) ([]uint32, error) {
	if err := checkNoNUL(text, "text"); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	ids := make([]uint32, len(text)+8)
	var n C.size_t
	err := call(func() C.enum_rill_status {
		return C.rill_tokenize(m.ptr, ctext, (*C.uint32_t)(unsafe.Pointer(&ids[0])), C.size_t(len(ids)), &n)
	})
	if status, ok := err.(*Error); ok && status.Status == ErrBufferTooSmall {
		ids = make([]uint32, int(n))
		err = call(func() C.enum_rill_status {
			return C.rill_tokenize(m.ptr, ctext, (*C.uint32_t)(unsafe.Pointer(&ids[0])), C.size_t(len(ids)), &n)
		})
	}
	if err != nil {
		return nil, err
	}
	return ids[:int(n)], nil
}

// Detokenize gives the text of ids (special tokens dropped). ErrTokenOutOfRange for an
// id outside the vocabulary.
func (m *Model) Detokenize(ids []uint32) (string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var p *C.uint32_t
	if len(ids) > 0 {
		p = (*C.uint32_t)(unsafe.Pointer(&ids[0]))
	}
	return readText(func(buf *C.char, capacity C.size_t, needed *C.size_t) C.enum_rill_status {
		return C.rill_detokenize(m.ptr, p, C.size_t(len(ids)), buf, capacity, needed)
	})
}

// ApplyChatTemplate renders messagesJSON (a JSON array of {"role", "content"}, or an
// object {"messages": [...], "tools": [...], "documents": [...], ...} whose other keys are
// template variables) with the model's chat template, ending where the assistant's reply
// begins when addGenerationPrompt is true.
func (m *Model) ApplyChatTemplate(messagesJSON string, addGenerationPrompt bool) (string, error) {
	if err := checkNoNUL(messagesJSON, "messagesJSON"); err != nil {
		return "", err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	cmsgs := C.CString(messagesJSON)
	defer C.free(unsafe.Pointer(cmsgs))
	add := C.int32_t(0)
	if addGenerationPrompt {
		add = 1
	}
	return readText(func(buf *C.char, capacity C.size_t, needed *C.size_t) C.enum_rill_status {
		return C.rill_model_apply_chat_template(m.ptr, cmsgs, add, buf, capacity, needed)
	})
}

// Provider tells where the graph runs (ProviderCPU or ProviderCUDA) and on which device.
func (m *Model) Provider() (Provider, int, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var p C.uint32_t
	var d C.int32_t
	err := call(func() C.enum_rill_status { return C.rill_model_provider(m.ptr, &p, &d) })
	return Provider(p), int(d), err
}

// ProviderNote says why CUDA was not used although ProviderCUDAElseCPU preferred it
// ("" when there was no fallback).
func (m *Model) ProviderNote() (string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return readText(func(buf *C.char, capacity C.size_t, needed *C.size_t) C.enum_rill_status {
		return C.rill_model_provider_note(m.ptr, buf, capacity, needed)
	})
}

// GraphFile is the path of the graph file the model runs: model.onnx or model.gqa.onnx.
func (m *Model) GraphFile() (string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return readText(func(buf *C.char, capacity C.size_t, needed *C.size_t) C.enum_rill_status {
		return C.rill_model_graph_file(m.ptr, buf, capacity, needed)
	})
}

// readText runs the C ABI's buffer pattern for NUL-terminated text: a first try with a
// small buffer, then exactly the size asked for.
func readText(f func(buf *C.char, capacity C.size_t, needed *C.size_t) C.enum_rill_status) (string, error) {
	buf := make([]byte, 256)
	var needed C.size_t
	try := func() error {
		return call(func() C.enum_rill_status {
			return f((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &needed)
		})
	}
	err := try()
	if e, ok := err.(*Error); ok && e.Status == ErrBufferTooSmall {
		buf = make([]byte, int(needed))
		err = try()
	}
	if err != nil {
		return "", err
	}
	if needed == 0 {
		return "", nil
	}
	return string(buf[:int(needed)-1]), nil
}

// Plugin is a loaded sampler plugin. Its samplers stay registered for the process after
// Close (the library stays loaded).
type Plugin struct {
	mu  sync.Mutex
	ptr *C.rill_plugin
}

// LoadPlugin loads the sampler plugin at path (a shared library exporting
// rill_plugin_entry) and registers its samplers. ErrPluginLoad when it cannot.
func LoadPlugin(path string) (*Plugin, error) {
	if err := checkNoNUL(path, "path"); err != nil {
		return nil, err
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var ptr *C.rill_plugin
	if err := call(func() C.enum_rill_status { return C.rill_plugin_load(cpath, &ptr) }); err != nil {
		return nil, err
	}
	liveObjects.Add(1)
	p := &Plugin{ptr: ptr}
	runtime.SetFinalizer(p, (*Plugin).Close)
	return p, nil
}

// Close releases the plugin handle. Idempotent.
func (p *Plugin) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ptr != nil {
		C.rill_plugin_free(p.ptr)
		p.ptr = nil
		liveObjects.Add(-1)
		runtime.SetFinalizer(p, nil)
	}
	return nil
}
