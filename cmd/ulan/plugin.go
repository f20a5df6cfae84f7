package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ulan-ai/ulan/host/plugin"
)

func newPluginCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Inspect WebAssembly plugins",
	}
	cmd.AddCommand(newPluginInspectCmd())
	return cmd
}

func newPluginInspectCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Print a plugin's ABI version, manifest, exports and imports",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			wasm, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			d, err := plugin.Describe(cmd.Context(), wasm)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				type view struct {
					ABI      int              `json:"abi"`
					Reactor  bool             `json:"reactor"`
					Manifest *plugin.Manifest `json:"manifest,omitempty"`
					Problem  string           `json:"manifest_problem,omitempty"`
					Exports  []string         `json:"exports"`
					Imports  []string         `json:"imports"`
				}
				v := view{ABI: d.ABI, Reactor: d.Reactor, Manifest: d.Manifest, Exports: d.Exports, Imports: d.Imports}
				if d.ManifestErr != nil {
					v.Problem = d.ManifestErr.Error()
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			abi := "none (no ulan_abi_1 export: not a ulan plugin)"
			if d.ABI > 0 {
				abi = fmt.Sprint(d.ABI)
			}
			shape := "reactor"
			if !d.Reactor {
				shape = "not a reactor (no _initialize): ulan refuses it"
			}
			fmt.Fprintf(out, "abi       %s\nshape     %s\n", abi, shape)
			if d.Manifest != nil {
				m := d.Manifest
				fmt.Fprintf(out, "plugin    %s %s (%s)\n", m.Name, m.Version, m.Kind)
				fmt.Fprintf(out, "needs     memory_pages=%d call_timeout_ms=%d imports=[%s] trust=%s\n",
					m.Needs.MemoryPages, m.Needs.CallTimeoutMS, strings.Join(m.Needs.Imports, " "), orNone(m.Needs.Trust))
			} else {
				fmt.Fprintf(out, "manifest  %v\n", d.ManifestErr)
			}
			fmt.Fprintln(out, "exports")
			for _, e := range d.Exports {
				fmt.Fprintln(out, "  "+e)
			}
			fmt.Fprintln(out, "imports")
			for _, i := range d.Imports {
				fmt.Fprintln(out, "  "+i)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
