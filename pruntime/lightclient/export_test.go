package lightclient

// BatchFastPath is how many blocks of bs IngestBatch's fast path (batched
// signature verification) accepts from the client's state, without
// adopting any: what Ingest is then left to do shows in len(bs) minus it.
func (c *Client) BatchFastPath(bs []Block) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	states, _ := c.checkBatch(c.st.Load(), bs)
	return len(states)
}
