package e2e

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/phala-go/phala/chain/auth"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/internal/testutil"
	"github.com/phala-go/phala/keyring"
	"github.com/phala-go/phala/proto/chainpb"
)

// getJSON does what `curl -s URL` does and decodes the JSON-RPC result.
func getJSON(t *testing.T, url string, result any) error {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var env struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Message string `json:"message"`
			Data    string `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("%s: %v: %s", url, err, body)
	}
	if env.Error != nil {
		return fmt.Errorf("%s: %s %s", url, env.Error.Message, env.Error.Data)
	}
	return json.Unmarshal(env.Result, result)
}

// TestStandardCometBFTRPCWorks: plain HTTP requests, as curl sends them, to
// CometBFT's /status, /block and /broadcast_tx_sync reach a Phala-Go node,
// and a transaction broadcast that way commits.
func TestStandardCometBFTRPCWorks(t *testing.T) {
	home := t.TempDir()
	base := testutil.FreePorts(t, devnet.PortsNeeded(len(devnet.DefaultWorkers())))
	dn := start(t, "devnet", nil, "devnet", "--home", home, "--base-port", strconv.Itoa(base), "--block-time", "200ms", "--no-demo", "--quiet")
	dn.waitOutput(t, "Blocks (Ctrl-C to stop)", 60*time.Second)
	rpc := fmt.Sprintf("http://127.0.0.1:%d", base)

	var status struct {
		NodeInfo struct {
			Network string `json:"network"`
		} `json:"node_info"`
		SyncInfo struct {
			LatestBlockHeight string `json:"latest_block_height"`
		} `json:"sync_info"`
	}
	if err := getJSON(t, rpc+"/status", &status); err != nil {
		t.Fatal(err)
	}
	if status.NodeInfo.Network != "phala-devnet" || status.SyncInfo.LatestBlockHeight == "" {
		t.Fatalf("/status = %+v", status)
	}
	var block struct {
		Block struct {
			Header struct {
				Height  string `json:"height"`
				ChainID string `json:"chain_id"`
				AppHash string `json:"app_hash"`
			} `json:"header"`
		} `json:"block"`
	}
	if err := getJSON(t, rpc+"/block?height=1", &block); err != nil {
		t.Fatal(err)
	}
	if block.Block.Header.Height != "1" || block.Block.Header.ChainID != "phala-devnet" || len(block.Block.Header.AppHash) != 64 {
		t.Fatalf("/block = %+v", block)
	}

	e, _ := devnet.ReadEndpoints(home)
	kr, _ := keyring.Open(e.Keyring)
	alice, _ := kr.Get("alice")
	bob, _ := kr.Get("bob")
	raw, err := auth.Sign(alice.PrivateKey(), &chainpb.TxBody{ChainId: "phala-devnet", Nonce: 0, Fee: 10_000,
		Msg: &chainpb.TxBody_Transfer{Transfer: &chainpb.MsgTransfer{To: bob.Address.Bytes(), Amount: 3 * bank.UnitsPerPHA}}})
	if err != nil {
		t.Fatal(err)
	}
	var bres struct {
		Code uint32 `json:"code"`
		Hash string `json:"hash"`
		Log  string `json:"log"`
	}
	if err := getJSON(t, rpc+"/broadcast_tx_sync?tx=0x"+hex.EncodeToString(raw), &bres); err != nil {
		t.Fatal(err)
	}
	if bres.Code != 0 || len(bres.Hash) != 64 {
		t.Fatalf("/broadcast_tx_sync = %+v", bres)
	}
	var txr struct {
		Height   string `json:"height"`
		TxResult struct {
			Code uint32 `json:"code"`
		} `json:"tx_result"`
	}
	eventually(t, 20*time.Second, "the transaction in a block", func() error {
		return getJSON(t, rpc+"/tx?hash=0x"+bres.Hash, &txr)
	})
	if txr.TxResult.Code != 0 {
		t.Fatalf("/tx = %+v", txr)
	}
	// A transaction refused by the app comes back as CometBFT reports it.
	if err := getJSON(t, rpc+"/broadcast_tx_sync?tx=0x"+hex.EncodeToString(raw), &bres); err == nil {
		t.Fatalf("a replayed transaction was accepted: %+v", bres)
	}
	dn.stop(t)
}
