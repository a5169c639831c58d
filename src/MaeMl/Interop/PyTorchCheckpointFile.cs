using System.Collections;
using System.IO.Compression;
using MaeMl.Checkpoints;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace MaeMl.Interop;

/// <summary>What a <c>torch.save</c> file held.</summary>
/// <param name="StateDict">The tensors of the state dict, by name (the caller disposes them).</param>
/// <param name="Key">The top-level entry the state dict came from (<c>model</c> in the official MAE files), or null for a bare state dict.</param>
/// <param name="OtherEntries">The other top-level entries (e.g. <c>optimizer</c>, <c>epoch</c>, <c>args</c>), not loaded.</param>
public sealed record PyTorchCheckpointContents(Dictionary<string, Tensor> StateDict, string? Key, IReadOnlyList<string> OtherEntries);

/// <summary>
/// Reads and writes <c>torch.save</c> zip archives as the official facebookresearch/mae code writes them:
/// <c>{'model': state_dict}</c> (plus, for training checkpoints, <c>optimizer</c>, <c>epoch</c>, <c>scaler</c>, <c>args</c>).
/// Reading runs <see cref="SafePickleValidator"/> over the pickle first, then TorchSharp.PyBridge's unpickler;
/// PyBridge's own <c>load_py</c> is not used because it expects a bare state dict and fails on the <c>{'model': ...}</c> nesting.
/// </summary>
public static class PyTorchCheckpointFile
{
    /// <summary>Top-level entries tried, in order, when the file is not a bare state dict.</summary>
    public static readonly IReadOnlyList<string> StateDictKeys = new[] { "model", "state_dict", "model_state", "module" };

    /// <summary>Reads the state dict. <paramref name="key"/> picks the top-level entry (default: a bare state dict, else
    /// <c>model</c>, <c>state_dict</c>, ...). Refuses unsafe pickles; truncated or corrupt files give an error naming the file.</summary>
    public static PyTorchCheckpointContents Read(string path, string? key = null)
    {
        var format = ModelFileFormats.Detect(path);
        if (format == ModelFileFormat.LegacyPickle)
        {
            SafePickleValidator.Validate(File.ReadAllBytes(path), path);
            throw new InvalidDataException($"'{path}' is a bare pickle (the legacy pre-1.6 torch.save format), which MaeMl does not read; re-save it with a current PyTorch (torch.save uses the zip format by default)");
        }
        if (format != ModelFileFormat.PyTorch) throw new InvalidDataException($"'{path}' is not a torch.save zip archive (it looks like {format})");

        Hashtable top;
        try
        {
            using var stream = File.OpenRead(path);
            using (var archive = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true))
            {
                var pickles = archive.Entries.Where(e => e.Name == "data.pkl").ToList();
                if (pickles.Count != 1) throw new InvalidDataException($"'{path}' is a zip archive but not a torch.save file: expected one data.pkl, found {pickles.Count}");
                using var pkl = pickles[0].Open();
                using var buffer = new MemoryStream();
                pkl.CopyTo(buffer);
                SafePickleValidator.Validate(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), path);
                VerifyChecksums(archive, path);
            }
            stream.Position = 0;
            top = PyTorchUnpickler.UnpickleStateDict(stream, leaveOpen: true);
        }
        catch (UnsafePickleException) { throw; }
        catch (Exception e) when (e is not OutOfMemoryException)   // whatever a damaged archive or pickle makes PyBridge throw
        {
            if (e is InvalidDataException && e.Message.Contains(path)) throw;
            throw new InvalidDataException($"'{path}' could not be read as a PyTorch checkpoint (truncated or corrupt?): {e.Message}", e);
        }
        return Unwrap(top, path, key);
    }

    /// <summary>Checks every entry against the CRC-32 the zip records (as PyTorch's reader does): PyBridge reads the
    /// stored tensor bytes without checking, so a damaged file would otherwise load with wrong weights.</summary>
    static void VerifyChecksums(ZipArchive archive, string path)
    {
        var chunk = new byte[1 << 16];
        foreach (var entry in archive.Entries)
        {
            if (entry.FullName.EndsWith('/')) continue;
            uint crc = 0xFFFFFFFF;
            long total = 0;
            using var stream = entry.Open();
            for (int n; (n = stream.Read(chunk, 0, chunk.Length)) > 0; total += n)
                for (int i = 0; i < n; i++) crc = Crc32Table[(crc ^ chunk[i]) & 0xFF] ^ (crc >> 8);
            if (total != entry.Length || ~crc != entry.Crc32)
                throw new InvalidDataException($"'{path}' is corrupt: entry '{entry.FullName}' does not match its recorded size and CRC-32");
        }
    }

    static readonly uint[] Crc32Table = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    static PyTorchCheckpointContents Unwrap(Hashtable top, string path, string? key)
    {
        var topKeys = top.Keys.Cast<object>().Select(k => k.ToString()!).ToList();
        IDictionary? source = null;
        string? used = null;
        if (key is not null)
        {
            source = top[key] as IDictionary ?? throw new InvalidDataException($"'{path}' has no state dict under '{key}'; its entries are: {string.Join(", ", topKeys)}");
            used = key;
        }
        else if (top.Count > 0 && top.Values.Cast<object?>().All(v => v is Tensor)) source = top;
        else
        {
            used = StateDictKeys.FirstOrDefault(k => top[k] is IDictionary d && d.Values.Cast<object?>().Any(v => v is Tensor));
            source = used is null ? null : (IDictionary)top[used]!;
        }
        if (source is null)
        {
            DisposeTensors(top);
            throw new InvalidDataException($"'{path}' holds no state dict: expected tensors by name, or one of the entries {string.Join(", ", StateDictKeys)}; found entries {string.Join(", ", topKeys)}");
        }
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (DictionaryEntry e in source)
            if (e.Value is Tensor t) result[e.Key.ToString()!] = t;
        // the other entries (an optimizer state can be twice the model) are not returned: free their tensors now
        if (used is not null)
            foreach (DictionaryEntry e in top)
                if (!ReferenceEquals(e.Value, source)) DisposeTensors(e.Value);
        // DistributedDataParallel wraps names in "module."
        if (result.Count > 0 && result.Keys.All(k => k.StartsWith("module.", StringComparison.Ordinal)))
            result = result.ToDictionary(kv => kv.Key["module.".Length..], kv => kv.Value, StringComparer.Ordinal);
        return new PyTorchCheckpointContents(result, used, used is null ? Array.Empty<string>() : topKeys.Where(k => k != used).ToList());
    }

    static void DisposeTensors(object? value)
    {
        switch (value)
        {
            case Tensor t: t.Dispose(); break;
            case IDictionary d: foreach (var v in d.Values) DisposeTensors(v); break;
            case IEnumerable items and not string: foreach (var v in items) DisposeTensors(v); break;
        }
    }

    /// <summary>Writes <c>{key: state_dict}</c> (official layout: <c>key = "model"</c>; null writes a bare state dict) as a
    /// <c>torch.save</c> zip archive that <c>torch.load</c> reads. Tensors are written detached, contiguous, on the CPU. Atomic.</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> stateDict, string? key = "model")
    {
        using var scope = NewDisposeScope();
        var inner = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var (name, tensor) in stateDict) inner[name] = tensor.detach().cpu().contiguous();
        IDictionary outer = key is null ? inner : new Dictionary<string, object> { [key] = inner };
        AtomicFile.Write(path, stream => PyTorchPickler.PickleStateDict(stream, outer, leaveOpen: true));
    }
}
