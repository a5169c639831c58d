using MaeMl.Interop;
using MaeMl.Model;

namespace MaeMl.Cli.Commands;

/// <summary>The one place where commands open model files (.maeml, official .pth, safetensors).</summary>
public static class ModelFiles
{
    public static MaskedAutoencoderViT LoadMae(string path, MaeLoadOptions? options = null)
    {
        if (!File.Exists(path)) throw new CliException($"checkpoint '{path}' does not exist");
        try { return MaeModelFile.LoadMae(path, options); }
        catch (Exception e) when (e is InvalidDataException or IOException or ArgumentException) { throw new CliException(e.Message); }
    }
}
