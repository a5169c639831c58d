using System.CommandLine;
using MaeMl.Model;
using TorchSharp;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml info</c>: versions, threads and the known model presets.</summary>
public static class InfoCommand
{
    public static Command Create()
    {
        var command = new Command("info", "Print library versions, torch threads and the MAE presets.");
        command.SetAction(_ =>
        {
            Console.WriteLine($"MaeMl {typeof(MaskedAutoencoderViT).Assembly.GetName().Version}, TorchSharp {typeof(torch).Assembly.GetName().Version}, torch threads {torch.get_num_threads()}");
            foreach (var (name, make) in MaePresets.All)
            {
                var c = make();
                Console.WriteLine($"  {name,-28} img {c.ImageSize} patch {c.PatchSize} enc {c.EmbedDim}x{c.Depth} ({c.NumHeads} heads) dec {c.DecoderEmbedDim}x{c.DecoderDepth} ({c.DecoderNumHeads} heads)");
            }
            return 0;
        });
        return command;
    }
}
