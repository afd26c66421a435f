package replies

import (
	"fmt"
	"strings"
	"testing"
)

func TestReplyBlocksValid(t *testing.T) {
	m := NewMasker(Secrets{Values: []string{"hunter2secret"}})
	raw := `[
	 {"type":"header","text":{"type":"plain_text","text":"Deploy hunter2secret"}},
	 {"type":"section","text":{"type":"mrkdwn","text":"hey <!here> and <!subteam^S1|@ops> and <@U1>"},
	  "accessory":{"type":"image","image_url":"https://x.example/a.png?k=hunter2secret","alt_text":"a"}},
	 {"type":"section","fields":[{"type":"mrkdwn","text":"*host*"},{"type":"mrkdwn","text":"*token*"},
	   {"type":"plain_text","text":"web1"},{"type":"plain_text","text":"hunter2secret"}]},
	 {"type":"divider","block_id":"d1"},
	 {"type":"context","elements":[{"type":"mrkdwn","text":"<!channel>"},{"type":"image","image_url":"https://x/y.png","alt_text":"y"}]},
	 {"type":"image","image_url":"https://x/c.png","alt_text":"chart","title":{"type":"plain_text","text":"Chart"}}
	]`
	out, err := ReplyBlocks([]byte(raw), m, false)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if strings.Contains(s, "hunter2secret") {
		t.Errorf("a secret survived: %s", s)
	}
	for _, want := range []string{"&lt;!here>", "&lt;!subteam^S1|@ops>", "<@U1>", "&lt;!channel>", "[MASKED]"} {
		if !strings.Contains(s, want) {
			t.Errorf("blocks lack %q: %s", want, s)
		}
	}
	out, err = ReplyBlocks([]byte(raw), m, true)
	if err != nil || !strings.Contains(string(out), "<!here>") {
		t.Errorf("allow_mentions: %s, %v", out, err)
	}
	text := BlocksText(out)
	for _, want := range []string{"*Deploy [MASKED]*", "*host* │ *token*", "web1 │ [MASKED]", "────────", "[image: chart]"} {
		if !strings.Contains(text, want) {
			t.Errorf("BlocksText lacks %q:\n%s", want, text)
		}
	}
}

func TestReplyBlocksInvalid(t *testing.T) {
	m := NewMasker(Secrets{Values: []string{"sekrit"}})
	many := "[" + strings.TrimSuffix(strings.Repeat(`{"type":"divider"},`, 51), ",") + "]"
	long := fmt.Sprintf(`[{"type":"section","text":{"type":"mrkdwn","text":%q}}]`, strings.Repeat("é", 3001))
	// Masking lengthens text: the limit holds for what Slack gets.
	grows := fmt.Sprintf(`[{"type":"section","text":{"type":"mrkdwn","text":%q}}]`, strings.Repeat("sekrit x", 370))
	for name, c := range map[string]struct{ raw, want string }{
		"not json":       {`[{"type":`, "it is not valid JSON"},
		"not an array":   {`{"type":"divider"}`, "it must be a JSON array"},
		"two values":     {`[] []`, "more than one JSON value"},
		"empty":          {`[]`, "holds no blocks"},
		"too many":       {many, "it holds 51 blocks; Slack allows at most 50"},
		"long text":      {long, "block 1: (section) text: text is 3001 characters, more than Slack's 3000"},
		"masked longer":  {grows, "more than Slack's 3000"},
		"button":         {`[{"type":"actions","elements":[{"type":"button"}]}]`, `block type "actions" is not allowed`},
		"input":          {`[{"type":"input"}]`, `block type "input" is not allowed`},
		"accessory":      {`[{"type":"section","text":{"type":"plain_text","text":"x"},"accessory":{"type":"button","text":{"type":"plain_text","text":"go"}}}]`, "only an image element is allowed"},
		"unknown field":  {`[{"type":"divider","url":"x"}]`, `field "url" is not allowed`},
		"header mrkdwn":  {`[{"type":"header","text":{"type":"mrkdwn","text":"x"}}]`, "type must be plain_text"},
		"header long":    {fmt.Sprintf(`[{"type":"header","text":{"type":"plain_text","text":%q}}]`, strings.Repeat("x", 151)), "more than Slack's 150"},
		"11 fields":      {`[{"type":"section","fields":[` + strings.TrimSuffix(strings.Repeat(`{"type":"plain_text","text":"x"},`, 11), ",") + `]}]`, "11 fields, more than Slack's 10"},
		"no type":        {`[{"text":"x"}]`, `needs a "type"`},
		"section empty":  {`[{"type":"section"}]`, "needs text or fields"},
		"image no alt":   {`[{"type":"image","image_url":"https://x/y.png"}]`, "alt_text is missing"},
		"image file url": {`[{"type":"image","image_url":"file:///etc/shadow","alt_text":"x"}]`, "must be an http(s) URL"},
		"empty text":     {`[{"type":"section","text":{"type":"mrkdwn","text":""}}]`, "text is empty"},
		"block not obj":  {`["divider"]`, "must be a JSON object"},
	} {
		_, err := ReplyBlocks([]byte(c.raw), m, false)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", name, err, c.want)
		}
	}
}

func TestReplyText(t *testing.T) {
	m := NewMasker(Secrets{Values: []string{"hunter2secret"}})
	got := ReplyText("  *done* <!everyone> <!HERE> hunter2secret <@U1> \xff\n", m, false)
	if got != "*done* &lt;!everyone> &lt;!HERE> [MASKED] <@U1> \uFFFD" {
		t.Errorf("ReplyText = %q", got)
	}
	if got := ReplyText("<!channel>", m, true); got != "<!channel>" {
		t.Errorf("with allow_mentions: %q", got)
	}
}
