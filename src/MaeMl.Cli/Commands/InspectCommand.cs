using System.CommandLine;
using MaeMl.Interop;

namespace MaeMl.Cli.Commands;

/// <summary><c>maeml inspect FILE</c>: format, tensors and shapes, and the configuration inferred from them.</summary>
public static class InspectCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("file") { Description = "A weights file: .pth (torch.save), .safetensors or .maeml." };
        var shared = new ModelFileOptions();
        var command = new Command("inspect", "List a weight file's tensors and shapes and the MAE configuration inferred from them.");
        command.Arguments.Add(file);
        shared.AddTo(command);
        command.SetAction(parse =>
        {
            var info = MaeModelFile.Inspect(parse.GetValue(file)!, shared.Read(parse));
            Console.WriteLine($"{info.Path}: {info.Format}, {info.Naming} names, {info.Tensors.Count} tensors, " +
                              $"{info.Tensors.Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b)):N0} values");
            foreach (var note in info.Notes) Console.WriteLine($"  {note}");
            int width = info.Tensors.Select(t => t.Name.Length).DefaultIfEmpty(0).Max();
            foreach (var t in info.Tensors.OrderBy(t => t.Name, StringComparer.Ordinal))
                Console.WriteLine($"  {t.Name.PadRight(width)}  {t.DType,-9} [{string.Join(", ", t.Shape)}]");
            if (info.Config is { } c)
                Console.WriteLine($"configuration: img {c.ImageSize}, patch {c.PatchSize}, channels {c.InChans}, encoder {c.EmbedDim}x{c.Depth} ({c.NumHeads} heads), " +
                                  $"mlp ratio {c.MlpRatio}" + (info.Shapes?.HasDecoder == true ? $", decoder {c.DecoderEmbedDim}x{c.DecoderDepth} ({c.DecoderNumHeads} heads)" : ", no decoder"));
            else if (info.Shapes is { } s)
                Console.WriteLine($"shapes: img {s.ImageSize?.ToString() ?? "?"}, patch {s.PatchSize}, encoder {s.EmbedDim}x{s.Depth}" +
                                  (s.HasDecoder ? $", decoder {s.DecoderEmbedDim}x{s.DecoderDepth}" : "") + $"\nconfiguration incomplete: {info.ConfigProblem}");
            else Console.WriteLine($"not a MAE / ViT checkpoint: {info.ConfigProblem}");
            return 0;
        });
        return command;
    }
}
