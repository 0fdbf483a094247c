package rill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The same prompts and settings as tests/c/test_rill.c. RILL_MODEL and RILL_PLUGIN
// override the in-tree paths; RILL_GREEDY_C names a file holding the C test's
// "generated ..." line, which TestGreedyMatchesC must reproduce (make test-go sets it).
var (
	modelDir   = envOr("RILL_MODEL", "../../../models/rill-tiny")
	pluginPath = envOr("RILL_PLUGIN", "../../../build/libban_tokens.so")
	model      *Model
)

const greedy40 = `{"max_new_tokens": 40, "do_sample": false, "eos_token_id": []}`

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

func TestMain(m *testing.M) {
	var err error
	model, err = Open(modelDir, &Options{IntraThreads: 2})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot open the model:", err)
		os.Exit(1)
	}
	code := m.Run()
	model.Close()
	model.Close() // idempotent
	if n := liveHandles.Load(); n != 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d cgo handles still live\n", n)
		code = 1
	}
	// Objects a test forgot are freed by their finalizers, eventually.
	for i := 0; i < 50 && liveObjects.Load() != 0; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := liveObjects.Load(); n != 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d rill objects never freed\n", n)
		code = 1
	}
	os.Exit(code)
}

func newSession(t *testing.T, opts *SessionOptions, config string) *Session {
	t.Helper()
	s, err := model.NewSession(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if config != "" {
		if err := s.SetConfigJSON(config); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func mustGenerate(t *testing.T, s *Session, prompt string) Result {
	t.Helper()
	r, err := s.Generate(context.Background(), prompt, nil)
	if err != nil {
		t.Fatalf("Generate(%q): %v", prompt, err)
	}
	return r
}

func TestGreedyMatchesC(t *testing.T) {
	s := newSession(t, nil, `{"max_new_tokens": 24, "do_sample": false}`)
	var pieces []string
	r, err := s.Generate(context.Background(), "In the beginning God created", func(piece string) error {
		pieces = append(pieces, piece)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Tokens <= 0 || r.Tokens > 24 || len(pieces) == 0 || strings.Join(pieces, "") != r.Text {
		t.Fatalf("tokens %d, pieces %q, text %q", r.Tokens, pieces, r.Text)
	}
	line := fmt.Sprintf("generated %d tokens: In the beginning God created%s", r.Tokens, r.Text)
	t.Log(line)
	if path := os.Getenv("RILL_GREEDY_C"); path != "" {
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := line + "\n"; got != string(want) {
			t.Errorf("greedy output differs from the C test:\n got %q\nwant %q", got, want)
		}
	}
	if again := mustGenerate(t, s, "In the beginning God created"); again.Text != r.Text {
		t.Errorf("greedy output not repeatable: %q vs %q", again.Text, r.Text)
	}
	// The typed config gives the same text.
	if err := s.SetConfig(GenerationConfig{MaxNewTokens: Ptr(24), DoSample: Ptr(false), EOSTokenID: &[]uint32{1}}); err != nil {
		t.Fatal(err)
	}
	if again := mustGenerate(t, s, "In the beginning God created"); again.Text != r.Text {
		t.Errorf("typed config: %q vs %q", again.Text, r.Text)
	}
}

func TestCallbackStops(t *testing.T) {
	s := newSession(t, nil, `{"max_new_tokens": 24, "do_sample": false}`)
	ctx := context.Background()
	calls := 0
	r, err := s.Generate(ctx, "And the king said", func(string) error { calls++; return Stop })
	if err != nil || calls != 1 || r.Tokens != 1 || r.StopReason != StopCallback {
		t.Errorf("Stop: err %v, calls %d, result %+v", err, calls, r)
	}
	mine := errors.New("mine")
	calls = 0
	r, err = s.Generate(ctx, "And the king said", func(string) error {
		if calls++; calls == 2 {
			return fmt.Errorf("wrapped: %w", mine)
		}
		return nil
	})
	if !errors.Is(err, mine) || calls != 2 || r.StopReason != StopCallback {
		t.Errorf("callback error: err %v, calls %d, result %+v", err, calls, r)
	}
	// A panic comes out of Generate with its value; nothing unwinds through C.
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Errorf("recovered %v, want boom", v)
			}
		}()
		s.Generate(ctx, "And the king said", func(string) error { panic("boom") })
		t.Error("no panic")
	}()
	if r, err := s.LastGeneration(); err != nil || r.StopReason != StopCallback {
		t.Errorf("after the panic: %+v %v", r, err)
	}
	if r := mustGenerate(t, s, "And the king said"); r.Tokens == 0 {
		t.Error("session unusable after a panic")
	}
	if n := liveHandles.Load(); n != 0 {
		t.Errorf("%d handles live", n)
	}
}

func TestTokenize(t *testing.T) {
	text := "naïve café 🦀 and the earth"
	ids, err := model.Tokenize(text)
	if err != nil || len(ids) < 2 || ids[0] != 0 {
		t.Fatalf("%v %v", ids, err)
	}
	back, err := model.Detokenize(ids)
	if err != nil || back != text {
		t.Errorf("round trip %q %v", back, err)
	}
	long := strings.Repeat("and the earth was without form ", 40)
	if ids, err = model.Tokenize(long); err != nil {
		t.Fatal(err)
	}
	if back, err = model.Detokenize(ids); err != nil || back != long {
		t.Errorf("long round trip: %v", err)
	}
	if back, err = model.Detokenize(nil); err != nil || back != "" {
		t.Errorf("empty: %q %v", back, err)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	s := newSession(t, nil, "")
	small := newSession(t, &SessionOptions{ContextLen: 16}, "")
	closed, _ := model.NewSession(nil)
	closed.Close()
	closedModel, err := Open(modelDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	closedModel.Close()
	generate := func(s *Session, prompt string) func() error {
		return func() error { _, err := s.Generate(ctx, prompt, nil); return err }
	}
	cases := []struct {
		name string
		call func() error
		want Status
		msg  string // the message contains this
	}{
		{"missing folder", func() error { _, err := Open("/nonexistent/model", nil); return err }, ErrNotFound, "/nonexistent/model"},
		{"NUL in path", func() error { _, err := Open("models\x00x", nil); return err }, ErrInvalidArgument, "NUL"},
		{"context too large", func() error { _, err := model.NewSession(&SessionOptions{ContextLen: 1 << 30}); return err }, ErrInvalidArgument, ""},
		{"config not JSON", func() error { return s.SetConfigJSON("{not json") }, ErrGenerationConfig, ""},
		{"negative max_new_tokens", func() error { return s.SetConfigJSON(`{"max_new_tokens": -3}`) }, ErrGenerationConfig, ""},
		{"temperature 0", func() error { return s.SetConfigJSON(`{"temperature": 0}`) }, ErrGenerationConfig, "temperature"},
		{"typed temperature 0", func() error { return s.SetConfig(GenerationConfig{Temperature: Ptr[float32](0)}) }, ErrGenerationConfig, "temperature"},
		{"beam groups", func() error { return s.SetConfigJSON(`{"num_beams": 4, "num_beam_groups": 3}`) }, ErrGenerationConfig, ""},
		{"return sequences", func() error { return s.SetConfigJSON(`{"num_beams": 2, "num_return_sequences": 5}`) }, ErrGenerationConfig, ""},
		{"early stopping", func() error { return s.SetConfigJSON(`{"num_beams": 2, "early_stopping": "sometimes"}`) }, ErrGenerationConfig, ""},
		{"invalid UTF-8", generate(s, "abc\xff\xfe"), ErrInvalidUTF8, ""},
		{"NUL in prompt", generate(s, "ab\x00c"), ErrInvalidArgument, "NUL"},
		{"prompt too long", generate(small, "And the king said unto him, go and do thou likewise, for the day is at hand and the night is far spent"), ErrPromptTooLong, "context of 16 tokens"},
		{"token out of range", func() error { _, err := model.Detokenize([]uint32{5, 4000000000}); return err }, ErrTokenOutOfRange, ""},
		{"truncate past the end", func() error { return s.Truncate(1 << 20) }, ErrInvalidArgument, ""},
		{"negative truncate", func() error { return s.Truncate(-1) }, ErrInvalidArgument, ""},
		{"empty state", func() error { return s.Load(nil) }, ErrState, ""},
		{"garbage state", func() error { return s.Load([]byte("not a state blob")) }, ErrState, ""},
		{"chat template of non-JSON", func() error { _, err := model.ApplyChatTemplate(`{"role": 1}`, true); return err }, ErrInvalidArgument, ""},
		{"chat with non-JSON", func() error { _, err := s.Chat(ctx, "not json", nil); return err }, ErrInvalidArgument, ""},
		{"missing plugin", func() error { _, err := LoadPlugin("/nonexistent/libx.so"); return err }, ErrPluginLoad, "/nonexistent/libx.so"},
		{"unknown sampler", func() error { return s.AddSampler("no_such_sampler", "") }, ErrUnknownSampler, ""},
		{"closed session generates", generate(closed, "x"), ErrInvalidArgument, ""},
		{"closed session config", func() error { return closed.SetConfigJSON("{}") }, ErrInvalidArgument, ""},
		{"closed session cancel", closed.Cancel, ErrInvalidArgument, ""},
		{"closed session save", func() error { _, err := closed.Save(); return err }, ErrInvalidArgument, ""},
		{"closed session tokens", func() error { _, err := closed.Tokens(); return err }, ErrInvalidArgument, ""},
		{"closed model session", func() error { _, err := closedModel.NewSession(nil); return err }, ErrInvalidArgument, ""},
		{"closed model tokenize", func() error { _, err := closedModel.Tokenize("x"); return err }, ErrInvalidArgument, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			var rerr *Error
			if !errors.As(err, &rerr) || !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if !strings.Contains(rerr.Message, c.msg) || err.Error() != c.want.String()+": "+rerr.Message {
				t.Errorf("message %q (want it to contain %q), Error() %q", rerr.Message, c.msg, err.Error())
			}
		})
	}
	// Failed calls changed nothing: both sessions still generate.
	if err := small.SetConfigJSON(`{"max_new_tokens": 4}`); err != nil {
		t.Fatal(err)
	}
	if r := mustGenerate(t, small, "In the"); r.Tokens == 0 {
		t.Error("session unusable after an error")
	}
	if Status(ErrWeights).String() != "RILL_ERR_WEIGHTS" || Version() == "" {
		t.Error("status names / version")
	}
}

func TestPlugin(t *testing.T) {
	plugin, err := LoadPlugin(pluginPath)
	if err != nil {
		t.Fatal(err)
	}
	defer plugin.Close()
	s := newSession(t, nil, `{"max_new_tokens": 8, "do_sample": false, "repetition_penalty": 1.0}`)
	plain := mustGenerate(t, s, "In the beginning").Text
	prompt, _ := model.Tokenize("In the beginning")
	full, _ := model.Tokenize("In the beginning" + plain)
	if err := s.AddSampler("ban_tokens", `{"tokens": [`+strconv.Itoa(int(full[len(prompt)]))+`]}`); err != nil {
		t.Fatal(err)
	}
	banned := mustGenerate(t, s, "In the beginning").Text
	if banned == plain {
		t.Errorf("the plugin did not change the output %q", plain)
	}
	for params, want := range map[string]Status{"{nope": ErrGenerationConfig, "{}": ErrPlugin} {
		if err := s.AddSampler("ban_tokens", params); !errors.Is(err, want) {
			t.Errorf("params %s: got %v, want %v", params, err, want)
		}
	}
	if again := mustGenerate(t, s, "In the beginning").Text; again != banned {
		t.Errorf("chain changed by failed additions: %q vs %q", again, banned)
	}
	plugin.Close()
}

func TestBeams(t *testing.T) {
	s := newSession(t, nil, "")
	if err := s.SetConfig(GenerationConfig{MaxNewTokens: Ptr(12), DoSample: Ptr(false), NumBeams: Ptr(4), NumReturnSequences: Ptr(3)}); err != nil {
		t.Fatal(err)
	}
	best := mustGenerate(t, s, "In the beginning").Text
	beams, err := s.Beams()
	if err != nil || len(beams) != 3 {
		t.Fatalf("%v %v", beams, err)
	}
	for i, b := range beams {
		if b.Score >= 0 || (i > 0 && b.Score > beams[i-1].Score) {
			t.Errorf("scores not sorted and negative: %+v", beams)
		}
	}
	if beams[0].Text != best {
		t.Errorf("best %q, streamed %q", beams[0].Text, best)
	}
}

func TestConversation(t *testing.T) {
	ctx := context.Background()
	s := newSession(t, nil, greedy40)
	if r, _ := s.LastGeneration(); r.StopReason != StopNone {
		t.Errorf("stop reason before any generation: %v", r.StopReason)
	}
	full := mustGenerate(t, s, "In the beginning God created")
	if full.StopReason != StopMaxTokens || full.Tokens != 40 {
		t.Errorf("%+v", full)
	}
	// A stop string from the middle of the text: the output ends right before it.
	stop := full.Text[len(full.Text)/2 : len(full.Text)/2+4]
	cfg := GenerationConfig{MaxNewTokens: Ptr(40), DoSample: Ptr(false), EOSTokenID: &[]uint32{}, StopStrings: []string{stop}}
	if err := s.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	cut := mustGenerate(t, s, "In the beginning God created")
	if cut.StopReason != StopStopString || strings.Index(full.Text, stop) != len(cut.Text) || !strings.HasPrefix(full.Text, cut.Text) {
		t.Errorf("stop %q: %+v", stop, cut)
	}
	if cut.ReusedTokens+1 != cut.PromptTokens || cut.EvaluatedTokens != 1 {
		t.Errorf("prompt not reused: %+v", cut)
	}
	// Rollback and regenerate.
	s.SetConfigJSON(greedy40)
	count, _ := s.TokenCount()
	tokens, err := s.Tokens()
	if err != nil || len(tokens) != count {
		t.Errorf("Tokens %d, TokenCount %d, %v", len(tokens), count, err)
	}
	if err := s.Truncate(3); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.TokenCount(); n != 3 {
		t.Errorf("truncated to %d", n)
	}
	if r := mustGenerate(t, s, "In the beginning God created"); r.Text != full.Text || r.ReusedTokens != 3 {
		t.Errorf("regenerated %+v", r)
	}
	// A new turn evaluates only its own tokens.
	turn, _ := model.Tokenize(" And")
	count, _ = s.TokenCount()
	r, err := s.Append(ctx, " And", nil)
	if err != nil || r.ReusedTokens != count-1 || r.EvaluatedTokens != len(turn) {
		t.Errorf("append %+v %v (history %d, turn %d)", r, err, count, len(turn))
	}
	// Save, restore in another session, continue: the same as never stopping.
	s.SetConfigJSON(`{"max_new_tokens": 20, "do_sample": false, "eos_token_id": []}`)
	part1 := mustGenerate(t, s, "And the king said unto").Text
	blob, err := s.Save()
	if err != nil || len(blob) == 0 {
		t.Fatal(err)
	}
	restored := newSession(t, nil, "")
	blob[len(blob)/2] ^= 1
	if err := restored.Load(blob); !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("corrupt blob: %v", err)
	}
	blob[len(blob)/2] ^= 1
	if err := restored.Load(blob[:len(blob)-9]); !errors.Is(err, ErrState) {
		t.Errorf("truncated blob: %v", err)
	}
	if err := restored.Load(blob); err != nil {
		t.Fatal(err)
	}
	part2, err := restored.Append(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	whole := mustGenerate(t, newSession(t, nil, greedy40), "And the king said unto").Text
	if whole != part1+part2.Text {
		t.Errorf("saved and continued %q + %q, uninterrupted %q", part1, part2.Text, whole)
	}
	// Chat.
	msgs := `[{"role": "user", "content": "Who made the heaven?"}]`
	rendered, err := model.ApplyChatTemplate(msgs, true)
	if err != nil || !strings.Contains(rendered, "user: Who made the heaven?") || !strings.HasSuffix(rendered, "assistant:") {
		t.Errorf("rendered %q %v", rendered, err)
	}
	if rendered, _ = model.ApplyChatTemplate(msgs, false); strings.Contains(rendered, "assistant:") {
		t.Errorf("generation prompt added: %q", rendered)
	}
	if _, err := s.Chat(ctx, msgs, nil); err != nil {
		t.Error(err)
	}
	// The object form: the same messages with tools and a template variable render the
	// same (the default model's template uses neither); continuing a begun reply ends
	// the text inside it.
	request := `{"messages": [{"role": "user", "content": "Who made the heaven?"}], "tools": [], "date_string": "1 May"}`
	if same, err := model.ApplyChatTemplate(request, false); err != nil || same != rendered {
		t.Errorf("object form %q %v, array form %q", same, err, rendered)
	}
	begun := `{"messages": [{"role": "user", "content": "Who?"}, {"role": "assistant", "content": "In the"}], "continue_final_message": true}`
	if text, err := model.ApplyChatTemplate(begun, false); err != nil || !strings.HasSuffix(text, "assistant: In the") {
		t.Errorf("continued %q %v", text, err)
	}
	if _, err := model.ApplyChatTemplate(begun, true); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("continue_final_message with a generation prompt: %v", err)
	}
}

func TestPromptLookupGeneratesWhatGreedyDoes(t *testing.T) {
	prompt := "And God said, Let there be light: and there was light. And God saw the light, that it was good: and God said,"
	plain := mustGenerate(t, newSession(t, nil, greedy40), prompt)
	s := newSession(t, nil, "")
	if err := s.SetConfig(GenerationConfig{MaxNewTokens: Ptr(40), DoSample: Ptr(false), EOSTokenID: &[]uint32{}, PromptLookupNumTokens: Ptr(4)}); err != nil {
		t.Fatal(err)
	}
	if fast := mustGenerate(t, s, prompt); fast.Text != plain.Text || fast.Tokens != plain.Tokens {
		t.Errorf("prompt lookup %q, greedy %q", fast.Text, plain.Text)
	}
}

func TestConstrainedOutput(t *testing.T) {
	s := newSession(t, nil, "")
	if err := s.SetConfig(GenerationConfig{DoSample: Ptr(false), Samplers: []Sampler{RegexSampler(` [0-9]{4}\.`)}}); err != nil {
		t.Fatal(err)
	}
	g := mustGenerate(t, s, "The year of the flood was")
	if ok, _ := regexp.MatchString(`^ [0-9]{4}\.$`, g.Text); !ok || g.StopReason != StopEOS {
		t.Errorf("regex: %q, stop %v", g.Text, g.StopReason)
	}
	if err := s.SetConfig(GenerationConfig{DoSample: Ptr(false), Samplers: []Sampler{JSONSampler("object")}}); err != nil {
		t.Fatal(err)
	}
	g = mustGenerate(t, s, "def f(x):")
	var v map[string]any
	if err := json.Unmarshal([]byte(g.Text), &v); err != nil || g.StopReason != StopEOS {
		t.Errorf("json: %q (%v), stop %v", g.Text, err, g.StopReason)
	}
}

func TestAssistantGeneratesWhatGreedyDoes(t *testing.T) {
	prompt := "And God said, Let there be light: and there was light. And God saw the light, that it was good: and God said,"
	plain := mustGenerate(t, newSession(t, nil, greedy40), prompt)
	s := newSession(t, nil, greedy40)
	if err := s.SetAssistant(model); err != nil {
		t.Fatal(err)
	}
	if fast := mustGenerate(t, s, prompt); fast.Text != plain.Text || fast.Tokens != plain.Tokens {
		t.Errorf("assisted %q, greedy %q", fast.Text, plain.Text)
	}
	if err := s.SetAssistant(nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetConfigJSON(`{"max_new_tokens": 5, "do_sample": false, "eos_token_id": [], "output_logprobs": true}`); err != nil {
		t.Fatal(err)
	}
	mustGenerate(t, s, prompt)
	if lps, err := s.LastLogprobs(); err != nil || len(lps) != 5 || lps[0] > 0 {
		t.Errorf("logprobs %v, %v", lps, err)
	}
}

func TestCancel(t *testing.T) {
	long := `{"max_new_tokens": 900, "do_sample": false, "eos_token_id": []}`
	s := newSession(t, nil, long)
	usable := func() {
		t.Helper()
		s.SetConfigJSON(`{"max_new_tokens": 3}`)
		if r := mustGenerate(t, s, "In the"); r.Tokens == 0 {
			t.Error("unusable after a cancel")
		}
		s.SetConfigJSON(long)
	}
	t.Run("context cancelled after the first piece", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var once sync.Once
		r, err := s.Generate(ctx, "The function returns", func(string) error { once.Do(cancel); return nil })
		if !errors.Is(err, context.Canceled) || r.StopReason != StopCancelled || r.Tokens >= 900 || r.Text == "" {
			t.Errorf("%v %+v", err, r)
		}
		usable()
	})
	t.Run("deadline", func(t *testing.T) {
		// The first piece waits for the deadline, so it passes while rill generates.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		var once sync.Once
		r, err := s.Generate(ctx, "The function returns", func(string) error {
			once.Do(func() { <-ctx.Done() })
			return nil
		})
		if !errors.Is(err, context.DeadlineExceeded) || r.StopReason != StopCancelled || r.Tokens >= 900 {
			t.Errorf("%v %+v", err, r)
		}
		usable()
	})
	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		calls := 0
		_, err := s.Generate(ctx, "The function returns", func(string) error { calls++; return nil })
		if !errors.Is(err, context.Canceled) || calls != 0 {
			t.Errorf("%v after %d pieces", err, calls)
		}
	})
	t.Run("Cancel from another goroutine", func(t *testing.T) {
		started := make(chan struct{})
		var once sync.Once
		done := make(chan error)
		go func() {
			<-started
			done <- s.Cancel()
		}()
		r, err := s.Generate(context.Background(), "The function returns", func(string) error {
			once.Do(func() { close(started) })
			return nil
		})
		if cerr := <-done; err != nil || cerr != nil || r.StopReason != StopCancelled || r.Tokens >= 900 {
			t.Errorf("%v %v %+v", err, cerr, r)
		}
		usable()
	})
	t.Run("Close waits for a generation", func(t *testing.T) {
		s2, _ := model.NewSession(nil)
		s2.SetConfigJSON(long)
		started := make(chan struct{})
		var once sync.Once
		go func() {
			<-started
			s2.Cancel()
		}()
		closed := make(chan struct{})
		go func() {
			<-started
			s2.Close()
			close(closed)
		}()
		s2.Generate(context.Background(), "The function returns", func(string) error {
			once.Do(func() { close(started) })
			return nil
		})
		<-closed
		if _, err := s2.Generate(context.Background(), "x", nil); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("closed: %v", err)
		}
	})
}

// Sessions on several goroutines over one model, and one session shared by several
// goroutines (serialised by the binding); run with -race.
func TestConcurrent(t *testing.T) {
	const workers = 3
	want := mustGenerate(t, newSession(t, nil, `{"max_new_tokens": 8, "do_sample": false}`), "In the beginning").Text
	shared := newSession(t, nil, `{"max_new_tokens": 8, "do_sample": false}`)
	var wg sync.WaitGroup
	errs := make(chan error, 3*workers)
	for i := 0; i < workers; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			s, err := model.NewSession(nil)
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			s.SetConfigJSON(`{"max_new_tokens": 8, "do_sample": false}`)
			if r, err := s.Generate(context.Background(), "In the beginning", nil); err != nil || r.Text != want {
				errs <- fmt.Errorf("own session: %q %v", r.Text, err)
			}
			if _, err := model.Tokenize("and the earth"); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			if r, err := shared.Generate(context.Background(), "In the beginning", nil); err != nil || r.Text != want {
				errs <- fmt.Errorf("shared session: %q %v", r.Text, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A Session and a Model never closed are freed by their finalizers.
func TestFinalizers(t *testing.T) {
	before := liveObjects.Load()
	func() {
		m, err := Open(modelDir, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := m.NewSession(&SessionOptions{ContextLen: 64})
		if err != nil {
			t.Fatal(err)
		}
		s.SetConfigJSON(`{"max_new_tokens": 2}`)
		mustGenerate(t, s, "In the")
	}()
	if liveObjects.Load() != before+2 {
		t.Fatalf("live objects %d, want %d", liveObjects.Load(), before+2)
	}
	for i := 0; i < 100 && liveObjects.Load() != before; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := liveObjects.Load(); n != before {
		t.Errorf("finalizers left %d objects", n-before)
	}
}

func TestGraphChoice(t *testing.T) {
	if f, err := model.GraphFile(); err != nil || !strings.HasSuffix(f, "/model.gqa.onnx") {
		t.Fatalf("GraphFile() = %q, %v; want the fused graph", f, err)
	}
	plain, err := Open(modelDir, &Options{Graph: GraphPlain})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if f, err := plain.GraphFile(); err != nil || !strings.HasSuffix(f, "/model.onnx") {
		t.Fatalf("GraphPlain runs %q, %v", f, err)
	}
	if _, err := Open(modelDir, &Options{Graph: 7}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("graph 7: %v", err)
	}
}

func TestProvider(t *testing.T) {
	p, d, err := model.Provider()
	if err != nil || p != ProviderCPU || d != 0 {
		t.Fatalf("Provider() = %v, %v, %v; want the CPU", p, d, err)
	}
	if note, err := model.ProviderNote(); err != nil || note != "" {
		t.Fatalf("ProviderNote() = %q, %v", note, err)
	}
	if err := SetOnnxRuntimePath("/elsewhere/libonnxruntime.so"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("SetOnnxRuntimePath after loading: %v", err)
	}
	cuda, err := Open(modelDir, &Options{Provider: ProviderCUDA})
	if err == nil {
		cuda.Close()
		t.Skip("CUDA is usable here: ErrProvider is not exercised")
	}
	if !errors.Is(err, ErrProvider) || !strings.Contains(err.Error(), "cuda:0") {
		t.Fatalf("CUDA where unusable: %v", err)
	}
	fallback, err := Open(modelDir, &Options{Provider: ProviderCUDAElseCPU})
	if err != nil {
		t.Fatal(err)
	}
	defer fallback.Close()
	if p, _, _ := fallback.Provider(); p != ProviderCPU {
		t.Fatalf("fallback runs on %v", p)
	}
	if note, _ := fallback.ProviderNote(); !strings.Contains(note, "CUDA not used") {
		t.Fatalf("fallback note %q", note)
	}
}
