package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ulan-ai/ulan/host/config"
)

func TestByteSizeUnmarshalText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     config.ByteSize
		wantErr  string // substring of the error; "" for none
	}{
		{name: "plain integer", in: "1048576", want: config.MiB},
		{name: "zero", in: "0", want: 0},
		{name: "bytes unit", in: "512B", want: 512},
		{name: "KB is 1000", in: "64KB", want: 64_000},
		{name: "MB is 1000^2", in: "3MB", want: 3_000_000},
		{name: "GB is 1000^3", in: "1GB", want: 1_000_000_000},
		{name: "KiB is 1024", in: "64KiB", want: 64 * config.KiB},
		{name: "MiB is 1024^2", in: "32MiB", want: 32 * config.MiB},
		{name: "GiB is 1024^3", in: "1GiB", want: config.GiB},
		{name: "space before unit", in: "4 MiB", want: 4 * config.MiB},
		{name: "surrounding space", in: "  4MiB ", want: 4 * config.MiB},
		{name: "unit case ignored", in: "4mib", want: 4 * config.MiB},
		{name: "whole fraction", in: "1.5KiB", want: 1536},
		{name: "small whole fraction", in: "0.001KB", want: 1},
		{name: "largest", in: "9223372036854775807", want: 1<<63 - 1},
		{name: "unknown unit", in: "12XB", wantErr: `"12XB" is not a size (use bytes or a unit such as 64KiB, 32MiB)`},
		{name: "tebibytes not offered", in: "1TiB", wantErr: "is not a size (use bytes"},
		{name: "empty", in: "", wantErr: `"" is not a size`},
		{name: "unit only", in: "MiB", wantErr: "is not a size (use bytes"},
		{name: "words", in: "lots", wantErr: "is not a size (use bytes"},
		{name: "negative", in: "-1MiB", wantErr: `"-1MiB" is not a size (it is negative)`},
		{name: "explicit plus", in: "+1", wantErr: "is not a size (use bytes"},
		{name: "partial byte", in: "1.5B", wantErr: "not a whole number of bytes"},
		{name: "partial byte from KB", in: "0.0001KB", wantErr: "not a whole number of bytes"},
		{name: "bare point", in: "1.", wantErr: "is not a size (use bytes"},
		{name: "exponent", in: "1e6", wantErr: "is not a size (use bytes"},
		{name: "overflow", in: "9223372036854775808", wantErr: "too large"},
		{name: "overflow with unit", in: "9999999999GiB", wantErr: "too large"},
		{name: "two numbers", in: "1 2MiB", wantErr: "is not a size (use bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b config.ByteSize
			err := b.UnmarshalText([]byte(tt.in))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, b)
		})
	}
}

func TestByteSizeString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   config.ByteSize
		want string
	}{
		{name: "zero", in: 0, want: "0B"},
		{name: "bytes", in: 1000, want: "1000B"},
		{name: "not whole KiB", in: 1536, want: "1536B"},
		{name: "whole KiB", in: 3 * config.KiB, want: "3KiB"},
		{name: "whole MiB", in: 32 * config.MiB, want: "32MiB"},
		{name: "MiB and a bit", in: config.MiB + config.KiB, want: "1025KiB"},
		{name: "whole GiB", in: 2 * config.GiB, want: "2GiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, tt.in.String())
			text, err := tt.in.MarshalText()
			require.NoError(t, err)
			var back config.ByteSize
			require.NoError(t, back.UnmarshalText(text))
			require.Equal(t, tt.in, back, "MarshalText must read back")
		})
	}
}
