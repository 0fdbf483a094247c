"""`rill chat` driven like a person at a terminal (tmux send-keys / capture-pane): two
turns, /regen, Ctrl-C in the middle of a reply; and a conversation saved by one process
and continued by another (`rill generate --save-state / --load-state`)."""
import os
import pathlib
import shutil
import subprocess
import time
import uuid

import pytest

from test_runtime_folders import RILL

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")


class Terminal:
    """A program in a detached tmux session."""

    def __init__(self, command):
        self.name = f"rill-{uuid.uuid4().hex[:8]}"
        # A tmux server of its own (socket named after the session): a shared default
        # server that the previous test's close is shutting down can refuse the new
        # session ("server exited unexpectedly").
        self.tmux = ["tmux", "-L", self.name]
        # The pane outlives the program and says how it ended (no reliance on tmux's
        # remain-on-exit, whose scope differs between tmux versions).
        script = f"{command}; echo \"[exited $?]\"; sleep 600"
        subprocess.run([*self.tmux, "new-session", "-d", "-s", self.name, "-x", "220", "-y", "60", "bash", "-c", script],
                       check=True)

    def screen(self):
        out = subprocess.run([*self.tmux, "capture-pane", "-p", "-J", "-S", "-200", "-t", self.name],
                             capture_output=True, text=True)
        return out.stdout

    def keys(self, *keys):
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def type(self, line):
        self.keys("-l", line)
        self.keys("Enter")

    def wait(self, predicate, timeout=60, what=""):
        deadline = time.time() + timeout
        while time.time() < deadline:
            screen = self.screen()
            if predicate(screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; screen:\n{self.screen()}")

    def prompts(self, screen):
        return sum(1 for line in screen.splitlines() if line.startswith(">"))

    def turn(self, line, what):
        before = self.prompts(self.screen())
        self.type(line)
        # Done when a new empty "> " prompt follows the reply.
        return self.wait(lambda s: self.prompts(s) > before and s.rstrip().endswith(">"), what=what)

    def close(self):
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)
        socket = pathlib.Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}" / self.name
        socket.unlink(missing_ok=True)


def replies(screen):
    """Lines of the screen that are replies (neither prompts nor the banner)."""
    return [line for line in screen.splitlines() if line and not line.startswith(">") and "rill chat" not in line
            and not line.startswith("(")]


def test_chat_two_turns_regen_and_ctrl_c(default_model):
    # The default model, trained on prose, ends a chat turn at once; banning EOS (id 1)
    # makes it answer, and a newline ends the reply.
    cmd = (f"{RILL} chat --model {default_model} --threads 2 --greedy --max-new-tokens 20 "
           f"--sampler 'bad_words:{{\"bad_words_ids\": [[1]]}}' "
           f"--stop $'\\n' --system 'Speak as the Bible does.'")
    term = Terminal(cmd)
    try:
        term.wait(lambda s: "rill chat with" in s and s.rstrip().endswith(">"), what="the banner")
        term.turn("Who made the heaven?", "the first reply")
        screen = term.turn("And the earth?", "the second reply")
        first = replies(screen)
        assert len(first) == 2 and all(r.strip() for r in first), screen
        screen = term.turn("/regen", "the regenerated reply")
        again = replies(screen)
        # Greedy: the regenerated reply is the same text as the one it replaced.
        assert len(again) == 3 and again[2] == again[1], screen
        term.type("/quit")
        term.wait(lambda s: "[exited 0]" in s, what="the chat to exit")
    finally:
        term.close()

    slow = Terminal(f"{RILL} chat --model {default_model} --threads 2 --greedy --max-new-tokens 500 "
                    f"--stream-delay-ms 40 --sampler 'bad_words:{{\"bad_words_ids\": [[1]]}}'")
    try:
        slow.wait(lambda s: s.rstrip().endswith(">"), what="the banner")
        slow.type("Tell me of the kings of Israel")
        slow.wait(lambda s: len(replies(s)) >= 1 and len(replies(s)[0]) > 10, what="the reply to start")
        slow.keys("C-c")
        screen = slow.wait(lambda s: "[stopped]" in s and s.rstrip().endswith(">"), timeout=20,
                           what="Ctrl-C to stop the reply")
        assert "[exited" not in screen, "Ctrl-C must not leave the chat"
        slow.keys("C-c")  # at the prompt: a hint, still running
        slow.wait(lambda s: "/quit or Ctrl-D leaves" in s, what="the hint")
        slow.type("/reset")
        slow.wait(lambda s: "(conversation cleared)" in s, what="/reset")
        slow.keys("C-d")
        slow.wait(lambda s: "[exited 0]" in s, what="Ctrl-D to leave")
    finally:
        slow.close()


def test_a_saved_conversation_continues_in_another_process(default_model, tmp_path):
    def generate(*args):
        out = subprocess.run([RILL, "generate", "--model", default_model, "--greedy", "--threads", "2", *args],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout

    prompt = "And the king said unto"
    whole = generate("--prompt", prompt, "--max-new-tokens", "30")
    state = tmp_path / "state.bin"
    part1 = generate("--prompt", prompt, "--max-new-tokens", "12", "--save-state", state)
    part2 = generate("--load-state", state, "--max-new-tokens", "18")
    assert part1 + part2 == whole
    # A corrupt state file is a clear error.
    blob = bytearray(state.read_bytes())
    blob[len(blob) // 2] ^= 0x40
    state.write_bytes(bytes(blob))
    out = subprocess.run([RILL, "generate", "--model", default_model, "--load-state", state],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "checksum" in out.stderr, out.stderr
