using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MaeMl.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using MaeMl.Files;

namespace MaeMl.Checkpoints;

/// <summary>
/// MaeMl's own checkpoint file (<c>.maeml</c>): the model configuration, the training state (epoch, step, seed,
/// anything the trainer records), the model weights (TorchSharp format, official state-dict names) and, optionally,
/// the optimizer state. Written atomically. Layout: "MAEML" + version byte, int32 JSON length, JSON header,
/// int64 length + model bytes, int64 length + optimizer bytes (0 when absent). The header records the CRC-32 of both
/// sections (<c>checksums</c>), verified on load; files written before checksums existed load without the check.
/// For PyTorch interchange use the official .pth / safetensors formats (see the Interop folder).
/// </summary>
public static class MaeCheckpoint
{
    const byte FormatVersion = 1;
    static readonly byte[] Magic = "MAEML"u8.ToArray();
    /// <summary>Value of the header's <c>format</c> field for a MAE.</summary>
    internal const string FormatName = "maeml-checkpoint";
    /// <summary>File extension of MaeMl checkpoints.</summary>
    public const string Extension = ".maeml";

    /// <summary>Contents of the JSON header.</summary>
    /// <param name="Config">The MAE architecture (encoder and decoder).</param>
    /// <param name="Training">Whatever the trainer recorded (epoch, step, seed, options); empty when nothing was.</param>
    /// <param name="HasOptimizer">True when an optimizer state is stored.</param>
    public sealed record Header(MaeConfig Config, JsonObject Training, bool HasOptimizer);

    /// <summary>Writes <paramref name="model"/>, its configuration, <paramref name="training"/> (copied into the header) and the
    /// optimizer state when given to <paramref name="path"/> atomically. Throws <see cref="NonFiniteWeightsException"/>, leaving any
    /// existing file as it was, when a weight or optimizer moment is NaN or infinite.</summary>
    public static void Save(string path, MaskedAutoencoderViT model, JsonObject? training = null, OptimizerHelper? optimizer = null)
    {
        var header = new JsonObject
        {
            ["format"] = FormatName,
            ["format_version"] = FormatVersion,
            ["config"] = JsonSerializer.SerializeToNode(model.Config),
            ["training"] = training?.DeepClone() ?? new JsonObject(),
            ["has_optimizer"] = optimizer is not null,
        };
        Write(path, header, model, optimizer);
    }

    /// <summary>Writes the file layout (magic, JSON header, model section, optimizer section) atomically; shared by <see cref="ClassifierCheckpoint"/>.</summary>
    internal static void Write(string path, JsonObject header, nn.Module model, OptimizerHelper? optimizer)
    {
        if (FiniteCheck.FirstNonFinite(model, optimizer) is { } bad)
            throw new NonFiniteWeightsException($"'{path}' was not written: {bad} holds NaN or infinite values" +
                (File.Exists(path) ? "; the existing file is left as it was" : ""));
        using var modelBytes = Section(w => model.save(w));
        using var optimizerBytes = optimizer is null ? new MemoryStream() : Section(w => optimizer.save_state_dict(w));
        header = header.DeepClone().AsObject();
        header["checksums"] = new JsonObject { ["model_crc32"] = Crc(modelBytes), ["optimizer_crc32"] = Crc(optimizerBytes) };
        AtomicFile.Write(path, stream =>
        {
            using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            writer.Write(Magic);
            writer.Write(FormatVersion);
            var json = Encoding.UTF8.GetBytes(header.ToJsonString());
            writer.Write(json.Length);
            writer.Write(json);
            writer.Write(modelBytes.Length);
            writer.Write(modelBytes.GetBuffer(), 0, (int)modelBytes.Length);
            writer.Write(optimizerBytes.Length);
            writer.Write(optimizerBytes.GetBuffer(), 0, (int)optimizerBytes.Length);
        });
    }

    static MemoryStream Section(Action<BinaryWriter> body)
    {
        var buffer = new MemoryStream();
        using (var inner = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true)) body(inner);
        return buffer;
    }

    static uint Crc(MemoryStream section) => Crc32.Of(section.GetBuffer().AsSpan(0, (int)section.Length));

    /// <summary>True when the file starts with the MaeMl checkpoint magic.</summary>
    public static bool IsCheckpoint(string path)
    {
        if (!File.Exists(path) || !FileKind.IsRegularFile(path)) return false;
        using var stream = File.OpenRead(path);
        var head = new byte[Magic.Length];
        return stream.Read(head) == head.Length && head.AsSpan().SequenceEqual(Magic);
    }

    /// <summary>Reads and checks the header only (no weights); throws <see cref="InvalidDataException"/> for a classifier checkpoint,
    /// another file, a newer format or a corrupt header.</summary>
    public static Header ReadHeader(string path)
    {
        using var reader = Open(path);
        return ReadHeader(reader, path, out _);
    }

    /// <summary>A new model of the stored configuration with the stored weights. The model section is read and checked
    /// (size, checksum, enough bytes for the declared architecture) before the model is built.</summary>
    public static MaskedAutoencoderViT LoadModel(string path)
    {
        using var reader = Open(path);
        var header = ReadHeader(reader, path, out var json);
        var weights = ReadModelSection(reader, path, json, header.Config, withDecoder: true);
        var model = new MaskedAutoencoderViT(header.Config);
        try { LoadWeights(weights, path, model); }
        catch { model.Dispose(); throw; }
        return model;
    }

    /// <summary>Restores weights (and optimizer state, when given and stored) into existing objects; returns the header.</summary>
    public static Header LoadInto(string path, MaskedAutoencoderViT model, OptimizerHelper? optimizer = null)
    {
        using var reader = Open(path);
        var header = ReadHeader(reader, path, out var json);
        if (header.Config with { DropPath = model.Config.DropPath } != model.Config with { DropPath = model.Config.DropPath })
            throw new InvalidDataException($"Checkpoint '{path}' holds a different architecture ({Describe(header.Config)}) than the model ({Describe(model.Config)})");
        ReadSections(reader, path, json, model, optimizer);
        return header;
    }

    internal static string Describe(MaeConfig c) => $"img {c.ImageSize}, patch {c.PatchSize}, enc {c.EmbedDim}x{c.Depth}/{c.NumHeads}h, dec {c.DecoderEmbedDim}x{c.DecoderDepth}/{c.DecoderNumHeads}h";

    static BinaryReader Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Checkpoint '{path}' does not exist", path);
        FileKind.RequireRegular(path, "Checkpoint");
        return new BinaryReader(File.OpenRead(path), Encoding.UTF8);
    }

    static Header ReadHeader(BinaryReader reader, string path, out JsonObject node)
    {
        node = ReadHeaderJson(reader, path);
        var format = FormatOf(node);
        if (format == ClassifierCheckpoint.FormatName)
            throw new InvalidDataException($"'{path}' is a fine-tuned classifier checkpoint, not a MAE: load it with ClassifierCheckpoint or MaeModelFile.LoadClassifier");
        if (format is not null && format != FormatName)
            throw new InvalidDataException($"'{path}' is {DescribeFormat(format)}, not a MAE checkpoint");
        try
        {
            var config = ValidConfig(node["config"].Deserialize<MaeConfig>(), path);
            return new Header(config, node["training"]?.AsObject() ?? new JsonObject(), node["has_optimizer"]?.GetValue<bool>() ?? false);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"Checkpoint '{path}' has a corrupt header: {e.Message}");
        }
    }

    /// <summary>The header's configuration, checked (an invalid one is a corrupt file, not a caller's mistake).</summary>
    internal static MaeConfig ValidConfig(MaeConfig? config, string path)
    {
        if (config is null) throw new InvalidDataException($"'{path}': no model configuration");
        try { return config.Validate(); }
        catch (ArgumentException e) { throw new InvalidDataException($"Checkpoint '{path}' has a corrupt header: {e.Message}"); }
    }

    /// <summary>Checks the magic and version and returns the JSON header.</summary>
    internal static JsonObject ReadHeaderJson(BinaryReader reader, string path)
    {
        try
        {
            var magic = reader.ReadBytes(Magic.Length);
            if (!magic.AsSpan().SequenceEqual(Magic))
                throw new InvalidDataException($"'{path}' is not a MaeMl checkpoint (for PyTorch .pth or safetensors files use MaeModelFile.Load)");
            var version = reader.ReadByte();
            if (version > FormatVersion) throw new InvalidDataException($"'{path}' was written by a newer MaeMl (format {version}); this one reads format {FormatVersion}");
            int length = reader.ReadInt32();
            if (length < 0 || length > Remaining(reader)) throw new InvalidDataException($"Checkpoint '{path}' is truncated or corrupt (a header of {length} bytes)");
            // strict UTF-8 first: invalid bytes inside a JSON string would otherwise surface later, from whoever reads that value
            var text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(reader.ReadBytes(length));
            return JsonNode.Parse(text)?.AsObject() ?? throw new InvalidDataException($"Checkpoint '{path}' has an empty header");
        }
        catch (EndOfStreamException) { throw new InvalidDataException($"Checkpoint '{path}' is truncated (header)"); }
        catch (Exception e) when (e is JsonException or InvalidOperationException or ArgumentException)
        {
            throw new InvalidDataException($"Checkpoint '{path}' has a corrupt header: {e.Message}");
        }
    }

    static long Remaining(BinaryReader reader) => reader.BaseStream.Length - reader.BaseStream.Position;

    /// <summary>One length-prefixed section: its length checked against the file before anything is allocated, its
    /// CRC-32 against the header's <c>checksums</c> (when the file has them).</summary>
    static byte[] ReadSection(BinaryReader reader, string path, JsonObject header, string what, string checksumKey)
    {
        try
        {
            long length = reader.ReadInt64();
            if (length < 0) throw new InvalidDataException($"Checkpoint '{path}' is corrupt: its {what} section has length {length}");
            if (length > Remaining(reader)) throw new InvalidDataException($"Checkpoint '{path}' is truncated ({what}: {length} bytes declared, {Remaining(reader)} left)");
            if (length > Array.MaxLength) throw new InvalidDataException($"Checkpoint '{path}': its {what} section of {length} bytes is larger than MaeMl reads (2 GiB)");
            var bytes = reader.ReadBytes((int)length);
            if (bytes.Length != length) throw new InvalidDataException($"Checkpoint '{path}' is truncated ({what})");
            JsonNode? expected;
            try { expected = header["checksums"]?[checksumKey]; }
            catch (InvalidOperationException) { expected = null; }
            if (expected is not null)
            {
                uint stored;
                try { stored = expected.GetValue<uint>(); }
                catch (Exception e) when (e is InvalidOperationException or FormatException) { throw new InvalidDataException($"Checkpoint '{path}' has a corrupt header: checksum '{checksumKey}' is not a number"); }
                if (Crc32.Of(bytes) != stored)
                    throw new InvalidDataException($"Checkpoint '{path}' is corrupt: its {what} section does not match its checksum (CRC-32); the file was damaged after it was written");
            }
            return bytes;
        }
        catch (EndOfStreamException) { throw new InvalidDataException($"Checkpoint '{path}' is truncated ({what})"); }
    }

    /// <summary>The model section, refused when it is too small to hold the weights the header declares (a forged or
    /// corrupt header must not make the reader build a model of any size).</summary>
    internal static byte[] ReadModelSection(BinaryReader reader, string path, JsonObject header, MaeConfig config, bool withDecoder)
    {
        var bytes = ReadSection(reader, path, header, "model weights", "model_crc32");
        double needed = MinimumWeightBytes(config, withDecoder);
        if (bytes.Length < needed)
            throw new InvalidDataException($"Checkpoint '{path}' is corrupt: its header declares {Describe(config)} (at least {needed / (1 << 20):F1} MiB of weights) " +
                $"but its model section holds {bytes.Length} bytes; the model was not built");
        return bytes;
    }

    /// <summary>A lower bound on the bytes of a model's weight matrices at 2 bytes each (half precision): what any model
    /// section of that architecture must hold.</summary>
    static double MinimumWeightBytes(MaeConfig c, bool withDecoder)
    {
        double elements = BlockWeights(c.Depth, c.EmbedDim, c.MlpRatio) + (double)c.EmbedDim * c.InChans * c.PatchSize * c.PatchSize;
        if (withDecoder) elements += BlockWeights(c.DecoderDepth, c.DecoderEmbedDim, c.MlpRatio) + (double)c.EmbedDim * c.DecoderEmbedDim;
        return 2 * elements;
    }

    /// <summary>The weight-matrix elements of <paramref name="depth"/> transformer blocks (qkv, proj, fc1, fc2), biases and norms left out.</summary>
    internal static double BlockWeights(double depth, double dim, double mlpRatio) => depth * (4 * dim * dim + 2 * dim * Math.Floor(dim * mlpRatio));

    /// <summary>Reads the model section into <paramref name="model"/> (strict), then the optimizer section into
    /// <paramref name="optimizer"/> when both exist. A negative or inconsistent optimizer section is corruption, never a
    /// silent fresh optimizer.</summary>
    internal static void ReadSections(BinaryReader reader, string path, JsonObject header, nn.Module model, OptimizerHelper? optimizer)
    {
        LoadWeights(ReadSection(reader, path, header, "model weights", "model_crc32"), path, model);
        var optimizerBytes = ReadSection(reader, path, header, "optimizer state", "optimizer_crc32");
        bool declared;
        try { declared = header["has_optimizer"]?.GetValue<bool>() ?? false; }
        catch (InvalidOperationException) { throw new InvalidDataException($"Checkpoint '{path}' has a corrupt header: has_optimizer is not true or false"); }
        if (declared && optimizerBytes.Length == 0)
            throw new InvalidDataException($"Checkpoint '{path}' is corrupt: its header says it holds an optimizer state, but the optimizer section is empty");
        if (optimizer is null || optimizerBytes.Length == 0) return;
        try
        {
            using var ms = new BinaryReader(new MemoryStream(optimizerBytes));
            optimizer.load_state_dict(ms);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or EndOfStreamException or IOException or System.Runtime.InteropServices.ExternalException)
        {
            throw new InvalidDataException($"Checkpoint '{path}': its optimizer state does not fit this optimizer or is corrupt: {e.Message}", e);
        }
    }

    internal static BinaryReader OpenFile(string path) => Open(path);

    /// <summary>The header's <c>format</c> (null in files written before it existed, which are MAEs).</summary>
    internal static string? FormatOf(JsonObject header)
    {
        try { return header["format"]?.GetValue<string>(); }
        catch (Exception e) when (e is InvalidOperationException or FormatException) { return "?"; }
    }

    /// <summary>What a file of header <c>format</c> <paramref name="format"/> holds and how to read it, in words.</summary>
    internal static string DescribeFormat(string? format) => format switch
    {
        null or FormatName => "a MAE pretraining checkpoint (MaeCheckpoint, MaeModelFile.Load)",
        ClassifierCheckpoint.FormatName => "a fine-tuned classifier (ClassifierCheckpoint, MaeModelFile.LoadClassifier)",
        "maeml-detection" => "a detection model (DetectionModelFile, written by detect-train)",
        "maeml-segmentation" => "a segmentation model (SegmentationModelFile, written by segment-train)",
        _ => $"a MaeMl file of an unknown kind ('{format}'; written by a newer MaeMl?)",
    };

    internal static void LoadWeights(byte[] bytes, string path, nn.Module model)
    {
        try
        {
            using var ms = new BinaryReader(new MemoryStream(bytes));
            model.load(ms, strict: true);
        }
        catch (EndOfStreamException) { throw new InvalidDataException($"Checkpoint '{path}' is truncated (model weights)"); }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException or System.Runtime.InteropServices.ExternalException)
        {
            if (e is InvalidDataException && e.Message.Contains(path)) throw;
            throw new InvalidDataException($"Checkpoint '{path}': its model section does not match the architecture in its header or is corrupt: {e.Message}", e);
        }
    }
}
