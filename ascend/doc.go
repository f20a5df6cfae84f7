// Package ascend runs the engine on Huawei Ascend NPUs: the CANN runtime,
// aclnn operators and HCCL, loaded at run time with purego (no cgo). It
// implements the engine's Backend interface; cmd/ulan wires it in.
//
// Its code arrives with the Ascend backend issue.
package ascend
