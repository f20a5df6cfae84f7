package pipeline

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/engine/testmodel"
	"github.com/ulan-ai/ulan/host/chatparse"
)

// TestJinjaCallOf: the tool-call form of each DeepSeek template that ships
// in Jinja is told from its rendered output.
func TestJinjaCallOf(t *testing.T) {
	var v3 struct {
		ChatTemplate string `json:"chat_template"`
	}
	require.NoError(t, json.Unmarshal(testmodel.TokenizerConfigJSON(), &v3))
	read := func(name string) string {
		b, err := os.ReadFile("../../sdk/go/tokenizer/chatfmt/testdata/" + name)
		require.NoError(t, err)
		return string(b)
	}
	for name, tc := range map[string]struct {
		template string
		want     jinjaCall
	}{
		"DeepSeek-V3":            {v3.ChatTemplate, jinjaCall{parse: chatparse.V3, v3Head: true}},
		"DeepSeek-V3-0324":       {read("deepseek-v3-0324.jinja"), jinjaCall{parse: chatparse.V3, v3Head: true}},
		"DeepSeek-R1 distill":    {read("deepseek-r1-distill.jinja"), jinjaCall{parse: chatparse.V3, v3Head: true}},
		"DeepSeek-V3.1":          {read("deepseek-v3.1.jinja"), jinjaCall{parse: chatparse.V31}},
		"no tool calls":          {"{% for m in messages %}{{ m['content'] }}{% endfor %}", jinjaCall{parse: chatparse.V3}},
		"a template that throws": {"{{ raise_exception('no') }}", jinjaCall{parse: chatparse.V3}},
	} {
		require.Equal(t, tc.want, jinjaCallOf(tc.template), name)
		require.Equal(t, tc.want, jinjaCallOf(tc.template), "%s, remembered", name)
	}
}
