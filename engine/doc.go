// Package engine is ulan's Mixture-of-Experts inference engine. This package
// holds the contracts the rest of the engine is written against:
//
//   - Backend, Context and Tensor: the small set of semantic tensor operations
//     an architecture calls, recorded on device-owned tensors and read back only
//     at a sync point (Context.Compute), so that an asynchronous device such as
//     an Ascend NPU fits as well as the CPU;
//   - Batch: one step's tokens, positions and KV-cache slots;
//   - Model and Register: architectures by the names checkpoints carry.
//
// Formats live in engine/gguf, the CPU backend in engine/cpu, architectures in
// engine/arch/..., the KV-cache block pool in engine/kvcache.
package engine
