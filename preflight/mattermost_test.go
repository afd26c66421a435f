package preflight

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatops-executor/chatops-executor/config"
	"github.com/chatops-executor/chatops-executor/delivery/mattermosttest"
)

const (
	mmTok     = "mmtokenmmtokenmmtokenmmtok"
	mmIn      = "inininininininininininini1"
	mmOut     = "outoutoutoutoutoutoutouto1"
	mmMissing = "nonononononononononononon1"
)

func mmConfig(t *testing.T, url, token string) *config.Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mm-token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Mattermost.URL, cfg.Mattermost.TokenFile = url, p
	cfg.Policy.Rules = []config.Rule{{Name: "mm", Action: "allow", Channels: []string{mmIn, mmOut, mmMissing, "C0OPS0001"}}}
	return &cfg
}

func findings(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.Service + " " + f.Key + " ok=" + map[bool]string{true: "yes", false: "no"}[f.OK] + ": " + f.Msg + " | " + f.Fix + "\n")
	}
	return b.String()
}

func TestMattermostOnline(t *testing.T) {
	mm := mattermosttest.New(t, mmTok)
	mm.AddChannel(mmIn)
	mm.AddChannelWithoutBot(mmOut)
	fs := checkMattermost(context.Background(), mmConfig(t, mm.URL(), mmTok), Options{HTTPClient: &http.Client{}, Timeout: 5 * time.Second})
	got := findings(fs)
	for _, want := range []string{
		"mattermost mattermost.token_file ok=yes: token valid: bot @" + mattermosttest.BotName,
		"policy.rule[1] (mm).channels ok=yes: channel " + mmIn + ": the bot is a member",
		"policy.rule[1] (mm).channels ok=no: the bot is not a member of channel " + mmOut,
		"policy.rule[1] (mm).channels ok=no: the bot is not a member of channel " + mmMissing,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "C0OPS0001") {
		t.Errorf("asked Mattermost about a Slack channel:\n%s", got)
	}
	if !Failed(fs) {
		t.Error("a channel without the bot is not a failure")
	}
	for _, c := range mm.Calls("") {
		if !c.Token {
			t.Errorf("%s without the token", c.Path)
		}
	}
}

func TestMattermostOnlineFailures(t *testing.T) {
	mm := mattermosttest.New(t, mmTok)
	opt := Options{HTTPClient: &http.Client{}, Timeout: 5 * time.Second}
	got := findings(checkMattermost(context.Background(), mmConfig(t, mm.URL(), "wrongwrongwrongwrongwrong1"), opt))
	if !strings.Contains(got, "mattermost.token_file ok=no: Mattermost refuses the token") || strings.Contains(got, "wrongwrong") {
		t.Errorf("wrong token:\n%s", got)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	got = findings(checkMattermost(context.Background(), mmConfig(t, "http://"+addr, mmTok), opt))
	if !strings.Contains(got, "mattermost.url ok=no: cannot reach Mattermost") {
		t.Errorf("down:\n%s", got)
	}
	if fs := checkMattermost(context.Background(), &config.Config{}, opt); len(fs) != 0 {
		t.Errorf("asked Mattermost without [mattermost]: %v", fs)
	}
}
