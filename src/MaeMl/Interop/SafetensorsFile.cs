using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using MaeMl.Checkpoints;
using TorchSharp.PyBridge;
using static TorchSharp.torch;
using MaeMl.Files;

namespace MaeMl.Interop;

/// <summary>One tensor listed in a safetensors header.</summary>
internal sealed record SafetensorsEntry(string Name, string DType, long[] Shape, long Begin, long End);

/// <summary>
/// Safetensors files (Hugging Face's format: 8-byte header length, JSON header, raw little-endian data). The header is
/// checked here (so truncated or corrupt files give an error naming the file and the problem), the tensors are read and
/// written by TorchSharp.PyBridge's <c>Safetensors</c>.
/// </summary>
internal static class SafetensorsFile
{
    static readonly Dictionary<string, int> ItemSizes = new()
    {
        ["F64"] = 8, ["F32"] = 4, ["F16"] = 2, ["BF16"] = 2, ["I64"] = 8, ["I32"] = 4, ["I16"] = 2, ["I8"] = 1, ["U8"] = 1, ["BOOL"] = 1,
    };

    /// <summary>The header entries, validated against the file size; throws <see cref="InvalidDataException"/> naming the file.</summary>
    public static IReadOnlyList<SafetensorsEntry> ReadHeader(string path, out IReadOnlyDictionary<string, string> metadata)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Safetensors file '{path}' does not exist", path);
        using var stream = File.OpenRead(path);
        var lengthBytes = new byte[8];
        if (stream.ReadAtLeast(lengthBytes, 8, throwOnEndOfStream: false) < 8) throw new InvalidDataException($"'{path}' is truncated: no safetensors header");
        var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > (ulong)(stream.Length - 8)) throw new InvalidDataException($"'{path}' is truncated or not safetensors: header of {headerLength} bytes in a {stream.Length}-byte file");
        var header = new byte[headerLength];
        stream.ReadExactly(header);
        long dataLength = stream.Length - 8 - (long)headerLength;
        var entries = new List<SafetensorsEntry>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var meta = new Dictionary<string, string>();
        try
        {
            using var doc = JsonDocument.Parse(header);
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == "__metadata__")
                {
                    foreach (var m in p.Value.EnumerateObject()) meta[m.Name] = m.Value.ToString();
                    continue;
                }
                if (!names.Add(p.Name)) throw new InvalidDataException($"'{path}' was refused: tensor '{p.Name}' is listed twice in its header (readers would disagree on which to load)");
                var dtype = p.Value.GetProperty("dtype").GetString()!;
                var shape = p.Value.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray();
                var offsets = p.Value.GetProperty("data_offsets").EnumerateArray().Select(x => x.GetInt64()).ToArray();
                if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0])
                    throw new InvalidDataException($"'{path}': tensor '{p.Name}' has invalid data offsets");
                if (offsets[1] > dataLength)
                    throw new InvalidDataException($"'{path}' is truncated: tensor '{p.Name}' ends at byte {offsets[1]} of a {dataLength}-byte data section");
                if (shape.Any(d => d < 0)) throw new InvalidDataException($"'{path}': tensor '{p.Name}' has a negative dimension [{string.Join(", ", shape)}]");
                if (ItemSizes.TryGetValue(dtype, out var size) && !ElementCountIs(shape, (offsets[1] - offsets[0]) / size, (offsets[1] - offsets[0]) % size))
                    throw new InvalidDataException($"'{path}': tensor '{p.Name}' ({dtype} [{string.Join(", ", shape)}]) does not match its {offsets[1] - offsets[0]} data bytes");
                entries.Add(new SafetensorsEntry(p.Name, dtype, shape, offsets[0], offsets[1]));
            }
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or ArgumentException)
        {
            throw new InvalidDataException($"'{path}' has a corrupt safetensors header: {e.Message}", e);
        }
        // each byte belongs to at most one tensor (the reference loader refuses overlaps too)
        var sorted = entries.Where(e => e.End > e.Begin).OrderBy(e => e.Begin).ToList();
        for (int i = 1; i < sorted.Count; i++)
            if (sorted[i].Begin < sorted[i - 1].End)
                throw new InvalidDataException($"'{path}' was refused: the data of tensors '{sorted[i - 1].Name}' and '{sorted[i].Name}' overlap (bytes {sorted[i].Begin}-{Math.Min(sorted[i].End, sorted[i - 1].End)})");
        metadata = meta;
        return entries;
    }

    /// <summary>True when the shape has exactly <paramref name="count"/> elements (and no bytes are left over), without overflowing.</summary>
    static bool ElementCountIs(long[] shape, long count, long remainder)
    {
        if (remainder != 0) return false;
        if (shape.Contains(0)) return count == 0;
        long n = 1;
        foreach (var d in shape)
        {
            if (n > count / d) return false;
            n *= d;
        }
        return n == count;
    }

    /// <summary>All tensors by name (the caller disposes them).</summary>
    public static Dictionary<string, Tensor> Read(string path)
    {
        ReadHeader(path, out _);
        try { return new Dictionary<string, Tensor>(Safetensors.LoadStateDict(path), StringComparer.Ordinal); }
        catch (Exception e) when (e is not FileNotFoundException)
        {
            throw new InvalidDataException($"'{path}' could not be read as safetensors: {e.Message}", e);
        }
    }

    /// <summary>Writes the tensors (detached, contiguous, CPU) with <c>{"format": "pt"}</c> metadata, as <c>safetensors.torch.save_file</c> does. Atomic.</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors)
    {
        using var scope = NewDisposeScope();
        var dict = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, tensor) in tensors) dict[name] = tensor.detach().cpu().contiguous();
        AtomicFile.Write(path, stream =>
        {
            using var body = new MemoryStream();
            Safetensors.SaveStateDict(body, dict, leaveOpen: true);
            AddFormatMetadata(body.GetBuffer().AsSpan(0, (int)body.Length), stream);
        });
    }

    /// <summary>Re-emits PyBridge's output with <c>__metadata__ = {"format": "pt"}</c>, which Hugging Face's loaders check.</summary>
    static void AddFormatMetadata(ReadOnlySpan<byte> file, Stream output)
    {
        var headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(file);
        var header = JsonDocument.Parse(file.Slice(8, headerLength).ToArray());
        using var json = new MemoryStream();
        using (var writer = new Utf8JsonWriter(json))
        {
            writer.WriteStartObject();
            writer.WriteStartObject("__metadata__");
            writer.WriteString("format", "pt");
            writer.WriteEndObject();
            foreach (var p in header.RootElement.EnumerateObject())
                if (p.Name != "__metadata__") p.WriteTo(writer);
            writer.WriteEndObject();
        }
        // pad the header with spaces to a multiple of 8, as the reference writer does
        var pad = (8 - (int)json.Length % 8) % 8;
        for (int i = 0; i < pad; i++) json.WriteByte((byte)' ');
        var lengthBytes = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(lengthBytes, (ulong)json.Length);
        output.Write(lengthBytes);
        output.Write(json.GetBuffer(), 0, (int)json.Length);
        output.Write(file[(8 + headerLength)..]);
    }
}
