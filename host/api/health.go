package api

import (
	"context"
	"net/http"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// healthHandler serves grpc.health.v1.Health with the messages of gRPC's own
// grpc/health/v1/health.proto, the schema that reflection describes. Connect's
// grpchealth handler speaks a renamed copy whose binary form is the same but
// whose JSON spells the statuses SERVING_STATUS_SERVING, where the standard
// schema says SERVING: a Connect or gRPC-web JSON client of the standard schema
// (a browser's, or curl's) read every answer as UNKNOWN.
type healthHandler struct{ checker *grpchealth.StaticChecker }

// newHealthHandler returns the path and handler of the health service over
// checker, whose statuses SetServing keeps.
func newHealthHandler(checker *grpchealth.StaticChecker, opts ...connect.HandlerOption) (string, http.Handler) {
	h := &healthHandler{checker: checker}
	mux := http.NewServeMux()
	mux.Handle(healthpb.Health_Check_FullMethodName, connect.NewUnaryHandler(healthpb.Health_Check_FullMethodName, h.check, opts...))
	mux.Handle(healthpb.Health_Watch_FullMethodName, connect.NewServerStreamHandler(healthpb.Health_Watch_FullMethodName, h.watch, opts...))
	return "/" + grpchealth.HealthV1ServiceName + "/", mux
}

func (h *healthHandler) check(ctx context.Context, req *connect.Request[healthpb.HealthCheckRequest]) (*connect.Response[healthpb.HealthCheckResponse], error) {
	res, err := h.checker.Check(ctx, &grpchealth.CheckRequest{Service: req.Msg.GetService()})
	if err != nil {
		return nil, err // NotFound for a service this server does not have
	}
	return connect.NewResponse(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_ServingStatus(res.Status)}), nil
}

// watch sends the service's status, then each change until the client goes
// away. A service this server does not have is SERVICE_UNKNOWN, as the health
// protocol asks of Watch, and stays so: the services never change.
func (h *healthHandler) watch(ctx context.Context, req *connect.Request[healthpb.HealthCheckRequest], ss *connect.ServerStream[healthpb.HealthCheckResponse]) error {
	check := &grpchealth.CheckRequest{Service: req.Msg.GetService()}
	changed := make(chan struct{}, 1)
	stop, err := h.checker.Watch(ctx, check, func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	if err != nil {
		if connect.CodeOf(err) != connect.CodeNotFound {
			return err
		}
		if err := ss.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVICE_UNKNOWN}); err != nil {
			return err
		}
		<-ctx.Done()
		return nil
	}
	defer stop()
	last := healthpb.HealthCheckResponse_ServingStatus(-1)
	for {
		res, err := h.checker.Check(ctx, check)
		if err != nil {
			return err
		}
		if status := healthpb.HealthCheckResponse_ServingStatus(res.Status); status != last {
			if err := ss.Send(&healthpb.HealthCheckResponse{Status: status}); err != nil {
				return err
			}
			last = status
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}
