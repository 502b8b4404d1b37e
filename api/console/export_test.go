package console

// Endpoints lists every JSON endpoint as "METHOD path" (below /ui/api/).
func (h *Handler) Endpoints() []string { return h.endpoints }
