using MaeMl.Checkpoints;
using MaeMl.Model;

namespace MaeMl.Cli.Commands;

/// <summary>The one place where commands open model files.</summary>
public static class ModelFiles
{
    public static MaskedAutoencoderViT LoadMae(string path)
    {
        if (!File.Exists(path)) throw new CliException($"checkpoint '{path}' does not exist");
        try { return MaeCheckpoint.LoadModel(path); }
        catch (Exception e) when (e is InvalidDataException or IOException) { throw new CliException(e.Message); }
    }
}
