package cli

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// withUsageErrors makes flag errors of every command usage errors.
func withUsageErrors(cmds []*cli.Command) {
	for _, c := range cmds {
		c.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usagef("%v", err) }
		withUsageErrors(c.Subcommands)
	}
}

// reorderArgs moves every flag of a command in front of its positional
// arguments, because urfave/cli v2 stops parsing flags at the first
// argument and the documented form is `integrations pause ID --by alice`.
func reorderArgs(app *cli.App, args []string) []string {
	withUsageErrors(app.Commands)
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	flags := app.Flags
	commands := app.Commands
	rest := args[1:]
	// Walk down the command path, keeping global and parent flags in place.
	for len(rest) > 0 {
		tok := rest[0]
		if strings.HasPrefix(tok, "-") {
			n := flagArity(flags, tok)
			out = append(out, rest[:min(n, len(rest))]...)
			rest = rest[min(n, len(rest)):]
			continue
		}
		var next *cli.Command
		for _, c := range commands {
			if c.HasName(tok) {
				next = c
			}
		}
		if next == nil {
			break
		}
		out = append(out, tok)
		rest = rest[1:]
		flags, commands = next.Flags, next.Subcommands
		if len(commands) == 0 {
			break
		}
	}
	var globalArgs, flagArgs, positional []string
	for i := 0; i < len(rest); i++ {
		tok := rest[i]
		if tok == "--" {
			positional = append(positional, rest[i+1:]...)
			break
		}
		if strings.HasPrefix(tok, "-") && tok != "-" {
			// A global flag given after the command (`status ID -o json`)
			// goes back in front of the command path.
			dst, arity := &flagArgs, flagArity(flags, tok)
			if !hasFlag(flags, tok) && hasFlag(app.Flags, tok) {
				dst, arity = &globalArgs, flagArity(app.Flags, tok)
			}
			end := min(i+arity, len(rest))
			*dst = append(*dst, rest[i:end]...)
			i = end - 1
			continue
		}
		positional = append(positional, tok)
	}
	out = append(out[:1], append(globalArgs, out[1:]...)...)
	out = append(out, flagArgs...)
	if len(positional) > 0 {
		out = append(out, "--")
		out = append(out, positional...)
	}
	return out
}

// hasFlag reports whether a flag token names one of flags.
func hasFlag(flags []cli.Flag, tok string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(tok, "-"), "=")
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// flagArity is how many tokens a flag token takes: 1 for booleans and
// --flag=value, 2 for a flag followed by its value.
func flagArity(flags []cli.Flag, tok string) int {
	name := strings.TrimLeft(tok, "-")
	if strings.Contains(name, "=") {
		return 1
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if _, isBool := f.(*cli.BoolFlag); isBool {
				return 1
			}
			return 2
		}
	}
	if name == "help" || name == "h" {
		return 1
	}
	return 2
}
