"""The lip-sync expert the project trains itself (SyncNet-style) to judge sync: network, training on train parts, LSE-style scores."""
