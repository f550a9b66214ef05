package cli

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/workflows"
)

// registerSearchAttributesCommand registers the search attributes the
// workflows upsert, on a self-hosted cluster (the dev server registers
// them itself; on Temporal Cloud use the Cloud UI or tcld).
func registerSearchAttributesCommand() *cli.Command {
	return &cli.Command{
		Name:  "register-search-attributes",
		Usage: "register the Integration* search attributes on a self-hosted Temporal cluster (idempotent)",
		Action: func(c *cli.Context) error {
			tc, err := dialTemporal(c, quietLogger(c))
			if err != nil {
				return err
			}
			defer tc.Close()
			opts, err := temporalOptions(c, quietLogger(c))
			if err != nil {
				return err
			}
			namespace := opts.Namespace
			if namespace == "" {
				namespace = "default"
			}
			existing, err := tc.OperatorService().ListSearchAttributes(c.Context, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
			if err != nil {
				return fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
			}
			want := map[string]enumspb.IndexedValueType{}
			for attr := range workflows.SearchAttributes(integration.State{}).GetUntypedValues() {
				if _, ok := existing.CustomAttributes[attr.GetName()]; !ok {
					want[attr.GetName()] = attr.GetValueType()
				}
			}
			if len(want) == 0 {
				fmt.Fprintf(c.App.Writer, "search attributes already registered in namespace %s\n", namespace)
				return nil
			}
			if _, err := tc.OperatorService().AddSearchAttributes(c.Context, &operatorservice.AddSearchAttributesRequest{
				Namespace: namespace, SearchAttributes: want,
			}); err != nil {
				return fmt.Errorf("add search attributes to namespace %s: %w", namespace, err)
			}
			var names []string
			for n := range want {
				names = append(names, n)
			}
			fmt.Fprintf(c.App.Writer, "registered %s in namespace %s\n", strings.Join(names, ", "), namespace)
			return nil
		},
	}
}
