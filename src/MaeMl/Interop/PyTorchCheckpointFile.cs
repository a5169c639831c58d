using System.Collections;
using System.IO.Compression;
using MaeMl.Checkpoints;
using TorchSharp.PyBridge;
using static TorchSharp.torch;
using MaeMl.Files;

namespace MaeMl.Interop;

/// <summary>What a <c>torch.save</c> file held.</summary>
/// <param name="StateDict">The tensors of the state dict, by name (the caller disposes them).</param>
/// <param name="Key">The top-level entry the state dict came from (<c>model</c> in the official MAE files), or null for a bare state dict.</param>
/// <param name="OtherEntries">The other top-level entries (e.g. <c>optimizer</c>, <c>epoch</c>, <c>args</c>), not loaded.</param>
internal sealed record PyTorchCheckpointContents(Dictionary<string, Tensor> StateDict, string? Key, IReadOnlyList<string> OtherEntries);

/// <summary>
/// Reads and writes <c>torch.save</c> zip archives as the official facebookresearch/mae code writes them:
/// <c>{'model': state_dict}</c> (plus, for training checkpoints, <c>optimizer</c>, <c>epoch</c>, <c>scaler</c>, <c>args</c>).
/// Reading runs <see cref="SafePickleValidator"/> over the pickle first, then TorchSharp.PyBridge's unpickler;
/// PyBridge's own <c>load_py</c> is not used because it expects a bare state dict and fails on the <c>{'model': ...}</c> nesting.
/// </summary>
internal static class PyTorchCheckpointFile
{
    /// <summary>Top-level entries tried, in order, when the file is not a bare state dict.</summary>
    public static readonly IReadOnlyList<string> StateDictKeys = new[] { "model", "state_dict", "model_state", "module" };

    /// <summary>Reads the state dict. <paramref name="key"/> picks the top-level entry (default: a bare state dict, else
    /// <c>model</c>, <c>state_dict</c>, ...). Refuses unsafe pickles; truncated or corrupt files give an error naming the file.</summary>
    public static PyTorchCheckpointContents Read(string path, string? key = null) => Unwrap(ReadTopLevel(path), path, key);

    /// <summary>The whole unpickled top-level dictionary (every entry, tensors included: the caller disposes them), after the
    /// same checks as <see cref="Read"/>: zip layout, <see cref="SafePickleValidator"/>, CRC-32s.</summary>
    internal static Hashtable ReadTopLevel(string path)
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
                var pickle = CheckLayout(archive, path);
                SafePickleValidator.Validate(ReadBounded(pickle, MaxPickleBytes(archive), path), path);
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
        return top;
    }

    /// <summary>
    /// The one pickle of the archive, after checking that every reader sees the same file: torch.load reads
    /// <c>&lt;folder&gt;/data.pkl</c> and <c>&lt;folder&gt;/data/&lt;key&gt;</c>, PyBridge the first entry whose name ends in
    /// <c>data.pkl</c> and the first ending in <c>data/&lt;key&gt;</c>. An archive where these could differ (a second pickle,
    /// an entry named twice, an entry outside the folder, a name that another one ends with) is refused, so the entry
    /// the validator checked is the entry that is unpickled and the tensors are the ones torch.load serves.
    /// </summary>
    static ZipArchiveEntry CheckLayout(ZipArchive archive, string path)
    {
        var files = archive.Entries.Where(e => !e.FullName.EndsWith('/')).ToList();
        InvalidDataException Refused(string why) => new($"'{path}' was refused: {why}; torch.save never writes such an archive, and readers could disagree on its content");
        var pickles = files.Where(e => e.FullName.EndsWith(".pkl", StringComparison.OrdinalIgnoreCase) || e.Name.EndsWith("data.pkl", StringComparison.Ordinal)).ToList();
        if (pickles.Count == 0) throw new InvalidDataException($"'{path}' is a zip archive but not a torch.save file: it has no data.pkl");
        if (pickles.Count > 1) throw Refused($"it holds {pickles.Count} pickles ({string.Join(", ", pickles.Take(5).Select(e => e.FullName))}) where torch.save writes one data.pkl");
        var pickle = pickles[0];
        var folder = pickle.FullName[..^"data.pkl".Length];
        if (pickle.Name != "data.pkl" || folder.Length < 2 || folder.IndexOf('/') != folder.Length - 1)
            throw Refused($"its pickle is '{pickle.FullName}', not <folder>/data.pkl");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in files)
        {
            var name = e.FullName;
            if (!name.StartsWith(folder, StringComparison.Ordinal) || name.Contains('\\') || name.Split('/').Any(part => part is "" or "." or ".."))
                throw Refused($"entry '{name}' lies outside the archive folder '{folder.TrimEnd('/')}'");
            if (!seen.Add(name)) throw Refused($"entry '{name}' appears twice");
        }
        var dataPrefix = folder + "data/";
        foreach (var e in files.Where(e => e.FullName.StartsWith(dataPrefix, StringComparison.Ordinal)))
        {
            var suffix = "data/" + e.FullName[dataPrefix.Length..];
            var clash = files.FirstOrDefault(o => !ReferenceEquals(o, e) && o.FullName.EndsWith(suffix, StringComparison.Ordinal));
            if (clash is not null) throw Refused($"entries '{e.FullName}' and '{clash.FullName}' both answer to the storage name '{suffix}'");
        }
        return pickle;
    }

    /// <summary>A weights pickle holds a few hundred bytes per tensor: 1 MiB plus 64 KiB per archive entry is far above any
    /// real one, and keeps a compressed pickle that inflates without end (a deflate bomb) from filling memory.</summary>
    static long MaxPickleBytes(ZipArchive archive) => (1L << 20) + (64L << 10) * archive.Entries.Count;

    static byte[] ReadBounded(ZipArchiveEntry entry, long limit, string path)
    {
        InvalidDataException TooBig(string size) => new($"'{path}' was refused: its pickle '{entry.FullName}' inflates to {size}, more than the {limit >> 10} KiB " +
            $"a state dict of {entry.Archive.Entries.Count - 1} stored entries needs (a damaged file or a decompression bomb)");
        if (entry.Length > limit) throw TooBig($"{entry.Length} bytes");
        using var stream = entry.Open();
        var buffer = new byte[Math.Min(entry.Length, limit) + 1];
        int total = 0;
        for (int n; total < buffer.Length && (n = stream.Read(buffer, total, buffer.Length - total)) > 0;) total += n;
        if (total > entry.Length) throw TooBig($"more than its recorded {entry.Length} bytes");
        return buffer[..total];
    }

    /// <summary>Checks every entry against the CRC-32 the zip records (as PyTorch's reader does): PyBridge reads the
    /// stored tensor bytes without checking, so a damaged file would otherwise load with wrong weights.</summary>
    static void VerifyChecksums(ZipArchive archive, string path)
    {
        var chunk = new byte[1 << 16];
        foreach (var entry in archive.Entries)
        {
            if (entry.FullName.EndsWith('/')) continue;
            uint crc = Crc32.Initial;
            long total = 0;
            using var stream = entry.Open();
            // stop at the recorded size: an entry that inflates beyond it is damaged (or a bomb), however far it goes
            for (int n; total <= entry.Length && (n = stream.Read(chunk, 0, chunk.Length)) > 0; total += n)
                crc = Crc32.Update(crc, chunk.AsSpan(0, n));
            if (total != entry.Length || Crc32.Final(crc) != entry.Crc32)
                throw new InvalidDataException($"'{path}' is corrupt: entry '{entry.FullName}' does not match its recorded size and CRC-32");
        }
    }

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

    /// <summary>Disposes every tensor reachable from <paramref name="value"/>: iteratively, each container once, so a
    /// pickle nested arbitrarily deep or holding itself cannot overflow the stack.</summary>
    internal static void DisposeTensors(object? value)
    {
        var pending = new Stack<object?>();
        var seen = new HashSet<object>(ReferenceEqualityComparer.Instance);
        pending.Push(value);
        while (pending.Count > 0)
        {
            switch (pending.Pop())
            {
                case Tensor t: t.Dispose(); break;
                case IDictionary d when seen.Add(d): foreach (var v in d.Values) pending.Push(v); break;
                case IEnumerable items and not string and not IDictionary when seen.Add(items): foreach (var v in items) pending.Push(v); break;
            }
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
