// A minimal streaming generator over the Go binding (greedy); Ctrl-C cancels through
// the context. Usage: stream MODEL_DIR PROMPT [MAX_NEW_TOKENS]
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"

	"rill.dev/bindings/go/rill"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: stream MODEL_DIR PROMPT [MAX_NEW_TOKENS]")
		os.Exit(2)
	}
	maxNew := 32
	if len(os.Args) > 3 {
		maxNew, _ = strconv.Atoi(os.Args[3])
	}
	if err := stream(os.Args[1], os.Args[2], maxNew); err != nil {
		fmt.Fprintln(os.Stderr, "rill:", err)
		os.Exit(1)
	}
}

func stream(dir, prompt string, maxNew int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	model, err := rill.Open(dir, nil)
	if err != nil {
		return err
	}
	defer model.Close()
	session, err := model.NewSession(nil)
	if err != nil {
		return err
	}
	defer session.Close()
	if err := session.SetConfig(rill.GenerationConfig{MaxNewTokens: rill.Ptr(maxNew), DoSample: rill.Ptr(false)}); err != nil {
		return err
	}
	fmt.Print(prompt)
	_, err = session.Generate(ctx, prompt, func(piece string) error {
		_, err := fmt.Print(piece)
		return err
	})
	fmt.Println()
	return err
}
