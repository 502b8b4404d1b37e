package raft

func realContents(b Backend) []string { panic("real store not wired yet") }
