package rill

// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"context"
	"encoding/json"
	"runtime"
	"sync"
	"unsafe"
)

// SessionOptions for NewSession; zero fields keep rill's defaults.
type SessionOptions struct {
	// Context length in tokens (prompt and generated); 0 is the model's maximum.
	ContextLen int
	// Prompt tokens evaluated per forward pass; 0 is rill's default.
	PrefillChunk int
	// Slide a window over a full context (keeping PinnedTokens) instead of stopping.
	SlidingWindow bool
	// Tokens at the start that the sliding window never drops.
	PinnedTokens int
}

// StopReason says why a generation stopped.
type StopReason int

// The stop reasons of rill.h.
const (
	StopNone        StopReason = C.RILL_STOP_NONE
	StopEOS         StopReason = C.RILL_STOP_EOS
	StopMaxTokens   StopReason = C.RILL_STOP_MAX_TOKENS
	StopContextFull StopReason = C.RILL_STOP_CONTEXT_FULL
	StopCallback    StopReason = C.RILL_STOP_CALLBACK
	StopStopString  StopReason = C.RILL_STOP_STOP_STRING
	StopCancelled   StopReason = C.RILL_STOP_CANCELLED
)

func (r StopReason) String() string {
	names := [...]string{"none", "eos", "max_tokens", "context_full", "callback", "stop_string", "cancelled"}
	if r >= 0 && int(r) < len(names) {
		return names[r]
	}
	return "unknown"
}

// Result describes one generation.
type Result struct {
	// The generated text, as streamed (a stop string left out).
	Text string
	// Generated tokens (end-of-sequence not counted).
	Tokens int
	// Why it stopped.
	StopReason StopReason
	// Prompt tokens; of those, ReusedTokens came from the cache and EvaluatedTokens
	// were run through the model.
	PromptTokens, ReusedTokens, EvaluatedTokens int
}

// GenerationConfig holds the common generation config keys (Hugging Face
// generation_config.json names and meanings); nil fields are left out, so the model
// folder's values or rill's defaults apply. Anything else: Session.SetConfigJSON.
type GenerationConfig struct {
	MaxNewTokens       *int      `json:"max_new_tokens,omitempty"`
	DoSample           *bool     `json:"do_sample,omitempty"`
	Temperature        *float32  `json:"temperature,omitempty"`
	TopK               *int      `json:"top_k,omitempty"`
	TopP               *float32  `json:"top_p,omitempty"`
	MinP               *float32  `json:"min_p,omitempty"`
	TypicalP           *float32  `json:"typical_p,omitempty"`
	RepetitionPenalty  *float32  `json:"repetition_penalty,omitempty"`
	NoRepeatNgramSize  *int      `json:"no_repeat_ngram_size,omitempty"`
	PresencePenalty    *float32  `json:"presence_penalty,omitempty"`
	FrequencyPenalty   *float32  `json:"frequency_penalty,omitempty"`
	Seed               *uint64   `json:"seed,omitempty"`
	NumBeams           *int      `json:"num_beams,omitempty"`
	NumReturnSequences *int      `json:"num_return_sequences,omitempty"`
	LengthPenalty      *float32  `json:"length_penalty,omitempty"`
	EOSTokenID         *[]uint32 `json:"eos_token_id,omitempty"` // an empty list: never stop at end-of-sequence
	StopStrings        []string  `json:"stop_strings,omitempty"`
	MinNewTokens       *int      `json:"min_new_tokens,omitempty"` // no end-of-sequence before this many new tokens
	// Prompt lookup decoding: up to this many tokens guessed from the context and
	// checked in one forward pass; the same output, in fewer passes.
	PromptLookupNumTokens *int `json:"prompt_lookup_num_tokens,omitempty"`
	// Custom samplers: RegexSampler, JSONSampler, or a plugin's.
	Samplers []Sampler `json:"samplers,omitempty"`
}

// Sampler is a custom sampler entry of a generation config: a registered sampler's
// name, its parameters, a plugin library to load first (empty: none) and whether it
// runs before the sampling warpers (where a constraint belongs).
type Sampler struct {
	Name          string         `json:"name"`
	Params        map[string]any `json:"params,omitempty"`
	Plugin        string         `json:"plugin,omitempty"`
	BeforeWarpers bool           `json:"before_warpers,omitempty"`
}

// RegexSampler is the standard `regex` sampler: the generated text stays a prefix of a
// full match of pattern (Rust regex syntax) and ends on one.
func RegexSampler(pattern string) Sampler {
	return Sampler{Name: "regex", Params: map[string]any{"pattern": pattern}, BeforeWarpers: true}
}

// JSONSampler is the standard `json` sampler: the generated text is one JSON value
// (top "object" for an object, "any" for any value) and ends when it is complete.
func JSONSampler(top string) Sampler {
	return Sampler{Name: "json", Params: map[string]any{"top": top}, BeforeWarpers: true}
}

// Ptr returns a pointer to v, for GenerationConfig fields: rill.Ptr(32).
func Ptr[T any](v T) *T { return &v }

// Beam is one hypothesis of a beam search.
type Beam struct {
	Text  string
	Score float32
}

// Session is one conversation over a model: tokens, KV cache and settings. Its methods
// are serialised (one call at a time); Cancel may be called from any goroutine while
// another generates.
type Session struct {
	mu   sync.Mutex   // one call at a time; Close waits for a generation
	live sync.RWMutex // Close (write) against Cancel (read) for ptr
	ptr  *C.rill_session
}

// NewSession creates a session with its own KV cache (allocated now, for the whole
// context). ErrInvalidArgument for a context larger than the model's.
func (m *Model) NewSession(opts *SessionOptions) (*Session, error) {
	copts := C.rill_session_options_default()
	if opts != nil {
		if opts.ContextLen != 0 {
			copts.context_len = C.uint32_t(opts.ContextLen)
		}
		if opts.PrefillChunk != 0 {
			copts.prefill_chunk = C.uint32_t(opts.PrefillChunk)
		}
		if opts.SlidingWindow {
			copts.context_policy = 1
		}
		copts.pinned_tokens = C.uint32_t(opts.PinnedTokens)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	var ptr *C.rill_session
	if err := call(func() C.enum_rill_status { return C.rill_session_new(m.ptr, &copts, &ptr) }); err != nil {
		return nil, err
	}
	liveObjects.Add(1)
	s := &Session{ptr: ptr}
	runtime.SetFinalizer(s, (*Session).Close)
	return s, nil
}

// Close frees the session, waiting for a generation in progress. Idempotent.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live.Lock()
	defer s.live.Unlock()
	if s.ptr != nil {
		C.rill_session_free(s.ptr)
		s.ptr = nil
		liveObjects.Add(-1)
		runtime.SetFinalizer(s, nil)
	}
	return nil
}

// SetConfigJSON replaces the session's generation settings with a JSON object of
// generation_config.json keys. ErrGenerationConfig (old settings kept) when malformed.
func (s *Session) SetConfigJSON(config string) error {
	if err := checkNoNUL(config, "config"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cconfig := C.CString(config)
	defer C.free(unsafe.Pointer(cconfig))
	return call(func() C.enum_rill_status { return C.rill_session_set_generation_config(s.ptr, cconfig) })
}

// SetConfig replaces the session's generation settings.
func (s *Session) SetConfig(config GenerationConfig) error {
	text, err := json.Marshal(config)
	if err != nil {
		return &Error{Status: ErrGenerationConfig, Message: err.Error()}
	}
	return s.SetConfigJSON(string(text))
}

// Generate continues prompt (the whole conversation; BOS is added), calling onPiece
// (may be nil) with each piece of text. The cached prefix is reused. onPiece returning
// Stop ends generation normally; another error ends it and is returned. When ctx is done
// the generation is cancelled after its current forward pass and ctx.Err() is returned
// with the partial Result. A panic in onPiece ends generation and is re-raised here.
// onPiece must not call the session's other methods (they wait for this one), except
// Cancel.
func (s *Session) Generate(ctx context.Context, prompt string, onPiece func(piece string) error) (Result, error) {
	return s.run(ctx, C.RILL_GO_GENERATE, prompt, "prompt", onPiece)
}

// Append adds text (no BOS) after the session's tokens and generates from there, as
// Generate does.
func (s *Session) Append(ctx context.Context, text string, onPiece func(piece string) error) (Result, error) {
	return s.run(ctx, C.RILL_GO_APPEND, text, "text", onPiece)
}

// Chat renders messagesJSON (the whole conversation, a JSON array of {"role",
// "content"}, or an object with "messages", "tools", "documents" and template variables)
// with the model's chat template and generates the reply, as Generate does.
func (s *Session) Chat(ctx context.Context, messagesJSON string, onPiece func(piece string) error) (Result, error) {
	return s.run(ctx, C.RILL_GO_CHAT, messagesJSON, "messagesJSON", onPiece)
}

func (s *Session) run(ctx context.Context, kind C.int, text, what string, onPiece func(string) error) (Result, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := checkNoNUL(text, what); err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	sink := &pieceSink{fn: onPiece}
	handle := newHandle(sink)
	defer deleteHandle(handle)

	// Cancel from ctx: the watcher ends before this returns, so it never touches a
	// freed session (Close needs s.mu, held here).
	ptr := s.ptr
	finished := make(chan struct{})
	watcherDone := make(chan struct{})
	if ctx.Done() == nil {
		close(watcherDone) // context.Background(): nothing to watch
	} else {
		go func() {
			defer close(watcherDone)
			select {
			case <-ctx.Done():
				C.rill_session_cancel(ptr)
			case <-finished:
			}
		}()
	}
	var n C.size_t
	err := call(func() C.enum_rill_status { return C.rill_go_run(kind, ptr, ctext, C.uintptr_t(handle), &n) })
	close(finished)
	<-watcherDone
	sink.finish()
	if err != nil {
		return Result{}, err
	}
	result := Result{Text: sink.text.String()}
	if err := s.fillInfo(&result); err != nil {
		return result, err
	}
	result.Tokens = int(n)
	if sink.err != nil && sink.err != Stop {
		return result, sink.err
	}
	if result.StopReason == StopCancelled && ctx.Err() != nil {
		return result, ctx.Err()
	}
	return result, nil
}

func (s *Session) fillInfo(r *Result) error {
	var info C.rill_generation_info
	info.struct_size = C.size_t(unsafe.Sizeof(info))
	if err := call(func() C.enum_rill_status { return C.rill_session_last_generation(s.ptr, &info) }); err != nil {
		return err
	}
	r.StopReason = StopReason(info.stop_reason)
	r.Tokens = int(info.generated_tokens)
	r.PromptTokens = int(info.prompt_tokens)
	r.ReusedTokens = int(info.reused_tokens)
	r.EvaluatedTokens = int(info.evaluated_tokens)
	return nil
}

// LastGeneration describes the session's last generation (StopNone before any; Text is
// empty).
func (s *Session) LastGeneration() (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r Result
	err := s.fillInfo(&r)
	return r, err
}

// Cancel stops the generation in progress after its current forward pass (StopCancelled;
// the session stays usable). Safe from any goroutine; no effect when none runs.
func (s *Session) Cancel() error {
	s.live.RLock()
	defer s.live.RUnlock()
	return call(func() C.enum_rill_status { return C.rill_session_cancel(s.ptr) })
}

// Truncate rolls the conversation back to its first n tokens. ErrInvalidArgument
// (nothing changed) when n exceeds TokenCount.
func (s *Session) Truncate(n int) error {
	if n < 0 {
		return &Error{Status: ErrInvalidArgument, Message: "negative token count"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return call(func() C.enum_rill_status { return C.rill_session_truncate(s.ptr, C.size_t(n)) })
}

// TokenCount is the number of tokens the session holds.
func (s *Session) TokenCount() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n C.size_t
	err := call(func() C.enum_rill_status { return C.rill_session_token_count(s.ptr, &n) })
	return int(n), err
}

// Tokens gives the session's token ids.
func (s *Session) Tokens() ([]uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return readArray[uint32](func(out unsafe.Pointer, capacity C.size_t, n *C.size_t) C.enum_rill_status {
		return C.rill_session_tokens(s.ptr, (*C.uint32_t)(out), capacity, n)
	})
}

// LastLogprobs gives the last generation's token log-probabilities (natural log, one per
// token; set "output_logprobs": true in the generation config, else none).
func (s *Session) LastLogprobs() ([]float32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return readArray[float32](func(out unsafe.Pointer, capacity C.size_t, n *C.size_t) C.enum_rill_status {
		return C.rill_session_last_logprobs(s.ptr, (*C.float)(out), capacity, n)
	})
}

// readArray asks fill for the count (RILL_ERR_BUFFER_TOO_SMALL with no room), then
// for that many elements.
func readArray[T any](fill func(out unsafe.Pointer, capacity C.size_t, n *C.size_t) C.enum_rill_status) ([]T, error) {
	var n C.size_t
	err := call(func() C.enum_rill_status { return fill(nil, 0, &n) })
	if e, ok := err.(*Error); ok && e.Status == ErrBufferTooSmall {
		out := make([]T, int(n))
		err = call(func() C.enum_rill_status { return fill(unsafe.Pointer(&out[0]), C.size_t(len(out)), &n) })
		if err != nil {
			return nil, err
		}
		return out[:int(n)], nil
	}
	if err != nil {
		return nil, err
	}
	return []T{}, nil
}

// Save gives the session's tokens, KV cache and settings as a versioned, checksummed
// blob bound to the model; Load restores it.
func (s *Session) Save() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var needed C.size_t
	err := call(func() C.enum_rill_status { return C.rill_session_save(s.ptr, nil, 0, &needed) })
	e, ok := err.(*Error)
	if !ok || e.Status != ErrBufferTooSmall {
		return nil, err
	}
	blob := make([]byte, int(needed))
	err = call(func() C.enum_rill_status {
		return C.rill_session_save(s.ptr, (*C.uint8_t)(unsafe.Pointer(&blob[0])), C.size_t(len(blob)), &needed)
	})
	if err != nil {
		return nil, err
	}
	return blob[:int(needed)], nil
}

// Load restores a blob from Save (possibly of another process). ErrState, leaving the
// session unchanged, for a truncated, corrupt or foreign blob.
func (s *Session) Load(blob []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var p *C.uint8_t
	if len(blob) > 0 {
		p = (*C.uint8_t)(unsafe.Pointer(&blob[0]))
	}
	return call(func() C.enum_rill_status { return C.rill_session_load(s.ptr, p, C.size_t(len(blob))) })
}

// AddSampler adds the sampler name (built in or from a loaded plugin) with JSON
// parameters ("" for {}) to the session's chain. ErrUnknownSampler, ErrPlugin or
// ErrGenerationConfig, leaving the chain as it was.
func (s *Session) AddSampler(name, paramsJSON string) error {
	if err := checkNoNUL(name, "name"); err != nil {
		return err
	}
	if err := checkNoNUL(paramsJSON, "paramsJSON"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var cparams *C.char
	if paramsJSON != "" {
		cparams = C.CString(paramsJSON)
		defer C.free(unsafe.Pointer(cparams))
	}
	return call(func() C.enum_rill_status { return C.rill_session_add_sampler(s.ptr, cname, cparams) })
}

// SetAssistant sets (nil: removes) the assistant model of assisted generation: it
// proposes the next tokens and the session's model checks them in one pass; the output
// is the same.
func (s *Session) SetAssistant(m *Model) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m == nil {
		return call(func() C.enum_rill_status { return C.rill_session_set_assistant(s.ptr, nil) })
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return call(func() C.enum_rill_status { return C.rill_session_set_assistant(s.ptr, m.ptr) })
}

// Beams gives the hypotheses of the last beam search, best first (none after another
// kind of generation).
func (s *Session) Beams() ([]Beam, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var count C.size_t
	if err := call(func() C.enum_rill_status { return C.rill_session_beam_count(s.ptr, &count) }); err != nil {
		return nil, err
	}
	beams := make([]Beam, 0, int(count))
	for i := C.size_t(0); i < count; i++ {
		var score C.float
		text, err := readText(func(buf *C.char, capacity C.size_t, needed *C.size_t) C.enum_rill_status {
			return C.rill_session_beam_result(s.ptr, i, buf, capacity, needed, &score)
		})
		if err != nil {
			return nil, err
		}
		beams = append(beams, Beam{Text: text, Score: float32(score)})
	}
	return beams, nil
}
