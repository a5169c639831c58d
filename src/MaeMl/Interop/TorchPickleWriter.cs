using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using static TorchSharp.torch;

namespace MaeMl.Interop;

/// <summary>A Python tuple in a value handed to <see cref="TorchPickleWriter"/> (a <see cref="List{T}"/> is a list).</summary>
internal sealed record PyTuple(params object?[] Items);

/// <summary>A Python dict whose keys keep their order (str or int keys); <see cref="Ordered"/> writes a <c>collections.OrderedDict</c>.</summary>
internal sealed class PyDict(bool ordered = false) : List<KeyValuePair<object, object?>>
{
    public bool Ordered { get; } = ordered;
    public void Add(object key, object? value) => Add(new KeyValuePair<object, object?>(key, value));
}

/// <summary>An <c>argparse.Namespace</c> with these attributes, in order.</summary>
internal sealed record PyNamespace(IReadOnlyList<KeyValuePair<string, object?>> Attributes);

/// <summary>
/// Writes a <c>torch.save</c> zip archive (<c>archive/data.pkl</c>, one <c>archive/data/N</c> entry per tensor, <c>archive/version</c>)
/// holding nested dicts, lists, tuples, str, int, float, bool, None, <c>argparse.Namespace</c> and tensors, with the pickle
/// protocol-2 opcodes <c>torch.save</c> itself emits, and only those <see cref="SafePickleValidator"/> accepts: the globals are
/// <c>torch._utils._rebuild_tensor_v2</c>, the <c>torch.*Storage</c> types, <c>collections.OrderedDict</c> and
/// <c>argparse.Namespace</c>. TorchSharp.PyBridge's pickler covers flat state dicts (Hashtable order, no Namespace), not a training
/// checkpoint, hence this writer. Entries are stored uncompressed (as PyTorch writes them) with a fixed timestamp, so the same
/// content gives the same bytes.
/// </summary>
internal static class TorchPickleWriter
{
    const string Folder = "archive";
    static readonly DateTimeOffset FixedTime = new(1980, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Writes <paramref name="value"/> as a torch.save archive to <paramref name="stream"/>.</summary>
    public static void Write(Stream stream, object? value)
    {
        var tensors = new List<Tensor>();
        using var scope = NewDisposeScope();
        var pickle = new MemoryStream();
        new Pickler(pickle, tensors).Dump(value);
        using var archive = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
        Entry(archive, $"{Folder}/data.pkl", s => s.Write(pickle.GetBuffer(), 0, (int)pickle.Length));
        for (int i = 0; i < tensors.Count; i++)
        {
            var t = tensors[i];
            Entry(archive, $"{Folder}/data/{i}", s => s.Write(t.bytes));
        }
        Entry(archive, $"{Folder}/version", s => s.Write("3\n"u8));
    }

    static void Entry(ZipArchive archive, string name, Action<Stream> write)
    {
        var entry = archive.CreateEntry(name, CompressionLevel.NoCompression);
        entry.LastWriteTime = FixedTime;
        using var s = entry.Open();
        write(s);
    }

    /// <summary>The storage class <c>torch.save</c> names for a dtype.</summary>
    internal static string StorageName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "FloatStorage",
        ScalarType.Float64 => "DoubleStorage",
        ScalarType.Float16 => "HalfStorage",
        ScalarType.BFloat16 => "BFloat16Storage",
        ScalarType.Int64 => "LongStorage",
        ScalarType.Int32 => "IntStorage",
        ScalarType.Int16 => "ShortStorage",
        ScalarType.Int8 => "CharStorage",
        ScalarType.Byte => "ByteStorage",
        ScalarType.Bool => "BoolStorage",
        _ => throw new ArgumentException($"tensors of type {dtype} are not written to .pth files"),
    };

    sealed class Pickler(MemoryStream o, List<Tensor> tensors)
    {
        const byte Mark = (byte)'(', Stop = (byte)'.', None = (byte)'N', NewTrue = 0x88, NewFalse = 0x89, BinInt = (byte)'J',
            BinInt1 = (byte)'K', BinInt2 = (byte)'M', Long1 = 0x8a, BinFloat = (byte)'G', BinUnicode = (byte)'X', EmptyTuple = (byte)')',
            Tuple1 = 0x85, Tuple2 = 0x86, Tuple3 = 0x87, Tuple = (byte)'t', EmptyList = (byte)']', Appends = (byte)'e',
            EmptyDict = (byte)'}', SetItems = (byte)'u', Global = (byte)'c', Reduce = (byte)'R', NewObj = 0x81, Build = (byte)'b',
            BinPersId = (byte)'Q', Proto = 0x80;
        const int Batch = 1000;   // items per APPENDS / SETITEMS, as Python's pickler batches them

        public void Dump(object? value)
        {
            o.WriteByte(Proto); o.WriteByte(2);
            Save(value);
            o.WriteByte(Stop);
        }

        void Save(object? v)
        {
            switch (v)
            {
                case null: o.WriteByte(None); break;
                case bool b: o.WriteByte(b ? NewTrue : NewFalse); break;
                case int i: Int(i); break;
                case long l: Int(l); break;
                case double d: Float(d); break;
                case float f: Float(f); break;
                case string s: Str(s); break;
                case Tensor t: SaveTensor(t); break;
                case PyTuple t: TupleOf(t.Items); break;
                case PyNamespace ns:
                    GlobalName("argparse", "Namespace");
                    o.WriteByte(EmptyTuple);
                    o.WriteByte(NewObj);
                    var state = new PyDict();
                    foreach (var (k, value) in ns.Attributes) state.Add(k, value);
                    Save(state);
                    o.WriteByte(Build);
                    break;
                case PyDict d:
                    if (d.Ordered) { GlobalName("collections", "OrderedDict"); o.WriteByte(EmptyTuple); o.WriteByte(Reduce); }
                    else o.WriteByte(EmptyDict);
                    for (int start = 0; start < d.Count; start += Batch)
                    {
                        o.WriteByte(Mark);
                        foreach (var (k, value) in d.Skip(start).Take(Batch)) { Save(k); Save(value); }
                        o.WriteByte(SetItems);
                    }
                    break;
                case System.Collections.IList list:
                    o.WriteByte(EmptyList);
                    for (int start = 0; start < list.Count; start += Batch)
                    {
                        o.WriteByte(Mark);
                        for (int i = start; i < Math.Min(list.Count, start + Batch); i++) Save(list[i]);
                        o.WriteByte(Appends);
                    }
                    break;
                default: throw new ArgumentException($"a value of type {v.GetType().Name} cannot be written to a .pth file");
            }
        }

        void Int(long v)
        {
            if (v is >= 0 and <= 0xff) { o.WriteByte(BinInt1); o.WriteByte((byte)v); }
            else if (v is >= 0 and <= 0xffff) { o.WriteByte(BinInt2); Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)v); o.Write(b); }
            else if (v is >= int.MinValue and <= int.MaxValue) { o.WriteByte(BinInt); Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteInt32LittleEndian(b, (int)v); o.Write(b); }
            else
            {
                // LONG1: little-endian two's complement, shortest form
                var bytes = new System.Numerics.BigInteger(v).ToByteArray();
                o.WriteByte(Long1); o.WriteByte((byte)bytes.Length); o.Write(bytes);
            }
        }

        void Float(double v)
        {
            o.WriteByte(BinFloat);
            Span<byte> b = stackalloc byte[8];
            BinaryPrimitives.WriteDoubleBigEndian(b, v);
            o.Write(b);
        }

        void Str(string s)
        {
            var bytes = Encoding.UTF8.GetBytes(s);
            o.WriteByte(BinUnicode);
            Span<byte> n = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(n, (uint)bytes.Length);
            o.Write(n);
            o.Write(bytes);
        }

        void GlobalName(string module, string name)
        {
            o.WriteByte(Global);
            o.Write(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
        }

        void TupleOf(IReadOnlyList<object?> items)
        {
            switch (items.Count)
            {
                case 0: o.WriteByte(EmptyTuple); return;
                case 1: Save(items[0]); o.WriteByte(Tuple1); return;
                case 2: Save(items[0]); Save(items[1]); o.WriteByte(Tuple2); return;
                case 3: Save(items[0]); Save(items[1]); Save(items[2]); o.WriteByte(Tuple3); return;
                default: o.WriteByte(Mark); foreach (var x in items) Save(x); o.WriteByte(Tuple); return;
            }
        }

        /// <summary><c>torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())</c>, the storage a persistent id
        /// <c>('storage', torch.XStorage, key, 'cpu', numel)</c> whose bytes go to <c>data/key</c>.</summary>
        void SaveTensor(Tensor t)
        {
            var c = t.detach().cpu().contiguous();
            string storage = StorageName(c.dtype);
            int key = tensors.Count;
            tensors.Add(c);
            GlobalName("torch._utils", "_rebuild_tensor_v2");
            o.WriteByte(Mark);
            o.WriteByte(Mark);
            Str("storage");
            GlobalName("torch", storage);
            Str(key.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Str("cpu");
            Int(c.numel());
            o.WriteByte(Tuple);
            o.WriteByte(BinPersId);
            Int(0);
            TupleOf(c.shape.Select(x => (object?)x).ToArray());
            TupleOf(c.stride().Select(x => (object?)x).ToArray());
            o.WriteByte(NewFalse);
            GlobalName("collections", "OrderedDict");
            o.WriteByte(EmptyTuple);
            o.WriteByte(Reduce);
            o.WriteByte(Tuple);
            o.WriteByte(Reduce);
        }
    }
}
