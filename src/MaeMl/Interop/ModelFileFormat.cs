using System.Buffers.Binary;
using MaeMl.Checkpoints;
using MaeMl.Files;

namespace MaeMl.Interop;

/// <summary>The weight-file formats MaeMl reads and writes.</summary>
public enum ModelFileFormat
{
    /// <summary>MaeMl's own checkpoint (<c>.maeml</c>): configuration + weights + training state.</summary>
    MaeMl,
    /// <summary>A <c>torch.save</c> zip archive (<c>.pth</c>, <c>.pt</c>, <c>.bin</c>): a pickle plus raw tensor storages.</summary>
    PyTorch,
    /// <summary>A bare pickle: the pre-1.6 <c>torch.save</c> format (not supported) or a plain pickle.</summary>
    LegacyPickle,
    /// <summary>Hugging Face safetensors: a JSON header and raw little-endian tensors.</summary>
    Safetensors,
}

/// <summary>Recognises a weight file by its content (not its extension).</summary>
public static class ModelFileFormats
{
    /// <summary>Reads the first bytes of <paramref name="path"/>; throws with the file name when it is none of the known formats.</summary>
    public static ModelFileFormat Detect(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Model file '{path}' does not exist", path);
        FileKind.RequireRegular(path, "Model file");
        var head = new byte[9];
        int n;
        using (var stream = File.OpenRead(path)) n = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        if (n == 0) throw new InvalidDataException($"'{path}' is empty");
        if (MaeCheckpoint.IsCheckpoint(path)) return ModelFileFormat.MaeMl;
        if (n >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) return ModelFileFormat.PyTorch;
        // safetensors before pickle: a header length's low byte may be 0x80, a pickle's PROTO opcode
        if (n == 9 && head[8] == '{' && BinaryPrimitives.ReadUInt64LittleEndian(head) < 100_000_000) return ModelFileFormat.Safetensors;
        if (head[0] == 0x80) return ModelFileFormat.LegacyPickle;
        throw new InvalidDataException($"'{path}' is not a model file MaeMl knows: expected a MaeMl checkpoint, a torch.save zip archive (.pth) or safetensors");
    }

    /// <summary>The format a file name asks for when saving: <c>.pth/.pt/.bin</c>, <c>.safetensors</c> or <c>.maeml</c>.</summary>
    public static ModelFileFormat FromExtension(string path) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".pth" or ".pt" or ".bin" or ".ckpt" => ModelFileFormat.PyTorch,
        ".safetensors" => ModelFileFormat.Safetensors,
        MaeCheckpoint.Extension => ModelFileFormat.MaeMl,
        var ext => throw new ArgumentException($"Cannot tell the format of '{path}' from its extension '{ext}': use .pth, .safetensors or .maeml"),
    };
}
