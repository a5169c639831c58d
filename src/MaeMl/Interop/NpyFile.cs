using System.Text;
using System.Text.RegularExpressions;
using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Interop;

/// <summary>Reads and writes NumPy <c>.npy</c> files (format 1.0-3.0, C order, little-endian) as TorchSharp tensors.</summary>
public static partial class NpyFile
{
    static readonly byte[] Magic = { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y' };

    /// <summary>Loads an array; supports float32/64, int32/64, uint8 and bool. Errors name the file.</summary>
    public static Tensor Load(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new IOException($"Cannot read .npy file '{path}': {e.Message}", e); }
        if (bytes.Length < 10 || !bytes.AsSpan(0, 6).SequenceEqual(Magic))
            throw new InvalidDataException($"'{path}' is not a .npy file (bad magic)");
        int major = bytes[6];
        int headerStart = major == 1 ? 10 : 12;
        long headerLen = bytes.Length < headerStart ? long.MaxValue : major == 1 ? BitConverter.ToUInt16(bytes, 8) : BitConverter.ToUInt32(bytes, 8);
        if (headerStart + headerLen > bytes.Length) throw new InvalidDataException($"'{path}' is truncated (header)");
        var header = Encoding.Latin1.GetString(bytes, headerStart, (int)headerLen);
        var descr = DescrRegex().Match(header).Groups[1].Value;
        if (FortranRegex().Match(header).Groups[1].Value == "True") throw new InvalidDataException($"'{path}': Fortran-order arrays are not supported");
        var shapeText = ShapeRegex().Match(header).Groups[1].Value;
        var shape = shapeText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(d => long.TryParse(d, System.Globalization.NumberStyles.None, null, out var v) ? v
                : throw new InvalidDataException($"'{path}' has a corrupt header: shape ({shapeText}) is not a list of sizes")).ToArray();
        var (dtype, itemSize) = descr switch
        {
            "<f4" => (ScalarType.Float32, 4),
            "<f8" => (ScalarType.Float64, 8),
            "<i8" => (ScalarType.Int64, 8),
            "<i4" => (ScalarType.Int32, 4),
            "|u1" => (ScalarType.Byte, 1),
            "|b1" => (ScalarType.Bool, 1),
            _ => throw new InvalidDataException($"'{path}': unsupported dtype '{descr}'"),
        };
        int dataStart = headerStart + (int)headerLen;
        long available = (bytes.Length - dataStart) / itemSize, count = shape.Contains(0) ? 0 : 1;
        foreach (var d in shape.Where(_ => count > 0))
        {
            // sizes are checked against the bytes present as they multiply: no overflow, no allocation for a shape the file cannot hold
            if (d != 0 && count > available / d) throw new InvalidDataException($"'{path}' is truncated: shape ({shapeText}) needs more than its {bytes.Length - dataStart} data bytes");
            count *= d;
        }
        var result = empty(shape, dtype);
        result.bytes = bytes.AsSpan(dataStart, (int)(count * itemSize));
        return result;
    }

    /// <summary>Writes a tensor as a version 1.0 .npy file.</summary>
    public static void Save(string path, Tensor tensor)
    {
        var descr = tensor.dtype switch
        {
            ScalarType.Float32 => "<f4", ScalarType.Float64 => "<f8", ScalarType.Int64 => "<i8",
            ScalarType.Int32 => "<i4", ScalarType.Byte => "|u1", ScalarType.Bool => "|b1",
            _ => throw new ArgumentException($"unsupported dtype {tensor.dtype}"),
        };
        var shape = tensor.shape.Length == 1 ? $"({tensor.shape[0]},)" : $"({string.Join(", ", tensor.shape)})";
        var header = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}";
        int pad = 64 - (10 + header.Length + 1) % 64;
        header = header + new string(' ', pad % 64) + "\n";
        using var stream = File.Create(path);
        stream.Write(Magic);
        stream.WriteByte(1); stream.WriteByte(0);
        stream.Write(BitConverter.GetBytes((ushort)header.Length));
        stream.Write(Encoding.Latin1.GetBytes(header));
        using var contiguous = tensor.cpu().contiguous();
        stream.Write(contiguous.bytes);
    }

    [GeneratedRegex(@"'descr':\s*'([^']+)'")] private static partial Regex DescrRegex();
    [GeneratedRegex(@"'fortran_order':\s*(True|False)")] private static partial Regex FortranRegex();
    [GeneratedRegex(@"'shape':\s*\(([^)]*)\)")] private static partial Regex ShapeRegex();
}
