// Package engine is ulan's Mixture-of-Experts inference engine: model formats
// (GGUF, Hugging Face safetensors), the DeepSeek architectures, the Backend
// interface with its CPU implementation, the KV cache and the scheduler.
//
// Its code arrives with the engine issues; until then the host answers
// inference requests with Unavailable (no model is loaded).
package engine
