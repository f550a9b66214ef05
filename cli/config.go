package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/acme/integrations/app"
)

// configKey is where a run keeps its loaded configuration.
const configKey = "config"

// loadConfig loads the process's configuration once (app.Load): from the
// flags given anywhere on the command line, the environment, and DATA-DIR/
// dev.json, except for `dev`, which writes that file.
func loadConfig(c *cli.Context) (app.Config, error) {
	if cfg, ok := c.App.Metadata[configKey].(app.Config); ok {
		return cfg, nil
	}
	flags := map[string]string{}
	for _, name := range app.FlagNames() {
		// Only flags the user set: a command that does not define a flag
		// (or its default) says nothing about the setting.
		if c.IsSet(name) {
			flags[name] = c.String(name)
		}
	}
	cfg, err := app.Load(app.Inputs{Flags: flags, NoDevJSON: c.Command.Name == "dev"})
	if err != nil {
		return app.Config{}, err
	}
	c.App.Metadata[configKey] = cfg
	return cfg, nil
}

func configCommand() *cli.Command {
	return &cli.Command{
		Name:      "config",
		Usage:     "print every effective setting, its value and where it came from (flag, env, dev.json, default); secrets redacted",
		ArgsUsage: " ",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("config takes no arguments (got %q)", c.Args().First())
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			settings := cfg.Settings()
			if jsonOutput(c) {
				byName := make(map[string]app.Setting, len(settings))
				for _, s := range settings {
					byName[s.Name] = s
				}
				out := map[string]any{"settings": byName, "credentials_key": cfg.KeySource()}
				if keyID, err := cfg.CheckKey(); err != nil {
					out["credentials_key_problem"] = keyProblem(err)
				} else {
					out["credentials_key_id"] = keyID
				}
				return printJSON(c, out)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SETTING\tVALUE\tSOURCE\tSET BY")
			for _, s := range settings {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.Value, s.Source, setBy(s))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "\ncredentials key: %s\n", keyText(cfg))
			return nil
		},
	}
}

// setBy lists where a setting can be given.
func setBy(s app.Setting) string {
	out := ""
	add := func(v string) {
		if out != "" {
			out += ", "
		}
		out += v
	}
	if s.Flag != "" {
		add("--" + s.Flag)
	}
	if s.Env != "" {
		add(s.Env)
	}
	if s.DevJSON != "" {
		add("dev.json " + s.DevJSON)
	}
	return out
}

// keyText says which key a command that seals or opens credentials uses.
func keyText(cfg app.Config) string {
	var source string
	switch cfg.KeySource() {
	case "env":
		source = "INTEGRATIONS_ENCRYPTION_KEY"
	case "dev stack":
		source = "the dev stack's " + cfg.KeyFile()
	default:
		return noKeyText
	}
	// The source alone could be a key the dev stack does not use: say
	// what a process of this configuration would find.
	keyID, err := cfg.CheckKey()
	if err != nil {
		return source + ", refused: " + keyProblem(err)
	}
	return source + " (key ID " + keyID + ")"
}

// keyProblem is why a key is refused, without app.ErrNoKey's "no
// encryption key" in front: beside a key that is set, that reads wrong.
func keyProblem(err error) string {
	return strings.TrimPrefix(err.Error(), app.ErrNoKey.Error()+": ")
}

// noKeyText is what config says without a key.
const noKeyText = "none: worker, serve, authorize and credentials rewrap refuse to start until INTEGRATIONS_ENCRYPTION_KEY is set (or they run against the dev stack of the data dir)"
